"""Retrieval quality on real documents nobody here wrote: recall@k and MRR per format (make bench-retrieval).

Documents: Debian's reference manual (package debian-reference-en) as PDF and as HTML chapters.
Questions: the manual's own headings. For the PDF they come from its outline (bookmarks), each with
the page it points to; for HTML from the section titles the loader finds, each with its section.
A heading asked as a question would find itself, so every heading is removed from the indexed
text (the table of contents too) before chunking: the question never appears in a chunk, and a
hit means the retriever found the section's content.

A hit is a retrieved chunk from the right address: the heading's page or the next one (PDF; a
heading low on a page starts its section on the next), the heading's section (HTML).
The same parts the server uses: loaders, Chunker, Embedder (bf16 on CPU), a per-user Chroma
collection, cosine similarity.
"""
from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common.devices import resolve_placement  # noqa: E402
from ingest.chunking import Chunker  # noqa: E402
from ingest.loaders import load_html, load_pdf  # noqa: E402
from ingest.types import Section  # noqa: E402
from rag.embedder import Embedder, packaged_model_path  # noqa: E402
from rag.keywords import SqliteKeywords  # noqa: E402
from rag.retriever import FUSION_CANDIDATES, fuse  # noqa: E402
from rag.spaces import Space  # noqa: E402
from rag.vector_store import Hit, VectorStore, make_client  # noqa: E402

MANUAL = Path("/usr/share/debian-reference")
HTML_CHAPTERS = [MANUAL / f"ch{number:02d}.en.html" for number in (1, 2, 3, 4)]
PDF = MANUAL / "debian-reference.en.pdf"
MIN_HEADING_WORDS = 2


@dataclass(frozen=True)
class Question:
    text: str
    is_hit: Callable[[dict], bool]


def _pattern(title: str) -> re.Pattern[str]:
    """The heading as it may be printed: any white space between words, any numbering before it."""
    words = [re.escape(word) for word in title.split()]
    return re.compile(r"(?:\b[\dA-Z]+(?:\.\d+)*\.?\s+)?" + r"\s+".join(words), re.IGNORECASE)


def _without(sections: list[Section], titles: list[str]) -> list[Section]:
    patterns = [_pattern(title) for title in sorted(set(titles), key=len, reverse=True)]
    cleaned = []
    for section in sections:
        text = section.text
        for pattern in patterns:
            text = pattern.sub(" ", text)
        cleaned.append(replace(section, text=text))
    return cleaned


def pdf_corpus() -> tuple[list[Section], list[Question]]:
    from pypdf import PdfReader

    reader = PdfReader(str(PDF))
    entries: list[tuple[str, int]] = []

    def walk(items: list) -> None:  # type: ignore[type-arg]
        for item in items:
            if isinstance(item, list):
                walk(item)
            else:
                entries.append((item.title.strip(), reader.get_destination_page_number(item) + 1))

    walk(reader.outline)
    counts: dict[str, int] = {}
    for title, _ in entries:
        counts[title] = counts.get(title, 0) + 1
    entries = [(title, page) for title, page in entries
               if counts[title] == 1 and len(title.split()) >= MIN_HEADING_WORDS]
    sections = _without(load_pdf(PDF).sections, [title for title, _ in entries])
    questions = [Question(title, lambda meta, page=page: meta.get("page") in (page, page + 1)) for title, page in entries]
    return sections, questions


def html_corpus() -> tuple[list[Section], list[Question]]:
    sections: list[Section] = []
    for chapter in HTML_CHAPTERS:
        sections += [replace(section, section=f"{chapter.name}#{section.section}") for section in load_html(chapter).sections]
    titles: dict[str, int] = {}
    previous = None
    for section in sections:  # a run of sections under one heading (text, a table, text) counts once
        if section.section != previous:
            titles[section.section or ""] = titles.get(section.section or "", 0) + 1
        previous = section.section
    asked = {name: name.split("#", 1)[1] for name, count in titles.items()
             if count == 1 and "#" in name and len(_bare(name.split("#", 1)[1]).split()) >= MIN_HEADING_WORDS}
    sections = _without(sections, [_bare(title) for title in asked.values()])
    questions = [Question(_bare(title), lambda meta, name=name: meta.get("section") == name) for name, title in asked.items()]
    return sections, questions


def _bare(title: str) -> str:
    """A heading without its number ("3.1.2. Stage 2: the boot loader" -> "Stage 2: the boot loader")."""
    return re.sub(r"^(?:[\dA-Z]+(?:\.\d+)*\.?\s+)", "", title).strip()


def evaluate(name: str, sections: list[Section], questions: list[Question], embedder: Embedder,
             store: VectorStore, space: Space, k_values: tuple[int, ...]) -> list[dict[str, object]]:
    """Index the corpus once in `space`, then ask every question by vectors alone and by the
    hybrid ranking (vectors fused with the keyword index, as the server does): one row each."""
    chunker = Chunker(embedder.token_offsets, 200, 40, embedder.max_tokens)
    chunks = [chunk for chunk in chunker.chunk(sections) if chunk.text.strip()]
    started = time.perf_counter()
    for start in range(0, len(chunks), 256):
        batch = chunks[start:start + 256]
        store.add(space, name, batch, embedder.embed([chunk.text for chunk in batch]))
    indexed_s = time.perf_counter() - started
    depth = max(k_values + (10,))

    def dense(question: str) -> list[Hit]:
        return store.query(space, embedder.embed([question])[0], depth)

    def hybrid(question: str) -> list[Hit]:
        vector = embedder.embed([question])[0]
        candidates = max(depth, FUSION_CANDIDATES)
        return fuse(store.query(space, vector, candidates), store.keyword_query(space, vector, question, candidates),
                    depth)

    rows = []
    for mode, search in (("dense", dense), ("hybrid", hybrid)):
        ranks: list[int | None] = []
        latencies = []
        for question in questions:
            began = time.perf_counter()
            hits = search(question.text)
            latencies.append((time.perf_counter() - began) * 1000)
            metas = [{"page": hit.page, "section": hit.section} for hit in hits]
            ranks.append(next((rank for rank, meta in enumerate(metas, 1) if question.is_hit(meta)), None))
        row: dict[str, object] = {"format": name, "mode": mode, "questions": len(questions), "chunks": len(chunks),
                                  "index_s": round(indexed_s, 1)}
        for k in k_values:
            row[f"recall@{k}"] = round(sum(1 for rank in ranks if rank is not None and rank <= k) / len(ranks), 3)
        row["MRR@10"] = round(sum(1 / rank for rank in ranks if rank is not None and rank <= 10) / len(ranks), 3)
        row["p50 ms"] = round(float(np.percentile(latencies, 50)), 1)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--formats", default="pdf,html", help="comma-separated: pdf, html")
    args = parser.parse_args()
    if not PDF.exists():
        print(f"{PDF} is missing: install the debian-reference-en package (make test-system-deps as root)")
        raise SystemExit(2)
    embedder = Embedder.shared(packaged_model_path(), *resolve_placement("auto", args.dtype))
    workdir = Path(tempfile.mkdtemp())
    keywords = SqliteKeywords(workdir / "keywords.db")
    store = VectorStore.on(make_client(workdir / "chroma"), keywords)
    print(f"\nRetrieval on Debian's reference manual; questions = its headings, removed from the index "
          f"({embedder.device}, {embedder.dtype}); p50 ms = one question: embedding, search, fusion\n")
    rows = []
    corpora = [(name, corpus) for name, corpus in (("pdf", pdf_corpus), ("html", html_corpus))
               if name in args.formats.split(",")]
    for user_id, (name, corpus) in enumerate(corpora, start=1):
        sections, questions = corpus()
        rows += evaluate(name, sections, questions, embedder, store, Space.personal(user_id), (1, 5, 10))
    columns = list(rows[0])
    print(" | ".join(f"{column:>10}" for column in columns))
    print(" | ".join("-" * 10 for _ in columns))
    for row in rows:
        print(" | ".join(f"{row[column]!s:>10}" for column in columns))
    keywords.close()


if __name__ == "__main__":
    main()
