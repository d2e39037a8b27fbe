"""Ingestion and retrieval benchmark: prints a table (make bench-ingest).

1. Pipeline throughput (parse in the sandbox, chunk, embed, store) in chunks/s on real documents,
   next to the raw embedder on exactly the same chunk texts in the same run.
2. Top-5 query latency p50/p99 for one user among many, at 10k and 100k chunks in all: this
   server's design (a collection per user) next to one shared collection with a `where` filter.
   Vectors there are random unit vectors (latency depends on counts, not on content).
3. Top-5 search latency for a user who belongs to 1, 5 and 20 workspaces, 100k chunks in all in
   20 workspaces: the retriever's real fan-out (one collection per space, the live-version check
   in the database, merged by score), the query's embedding left out (it costs the same for all).
4. Parsing only, pages/s: OCR of scanned pages (images of text, no text layer) next to the same
   pages with a text layer, and Debian's manual with and without the search for ruled tables.
5. OCR word accuracy on real born-digital PDFs (Debian's manual, zsh's manual): pages rendered to
   images at OCR_DPI, read by OCR, their words matched against the same pages' text layer.
"""
from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common.devices import resolve_placement  # noqa: E402
from config import Config  # noqa: E402
from ingest.sandbox import warm_up  # noqa: E402
from rag.spaces import Space, Target  # noqa: E402
from rag.types import Chunk  # noqa: E402
from rag.vector_store import VectorStore, make_client  # noqa: E402
from services import DocumentStack, build_document_stack  # noqa: E402

# Born-digital PDFs of real text (Debian's packages) and the pages rendered for OCR accuracy: prose,
# command lines and tables, past the contents lists.
OCR_ACCURACY_PDFS = [(Path("/usr/share/debian-reference/debian-reference.en.pdf"), 40),
                     (Path("/usr/share/doc/zsh-common/zsh.pdf"), 20)]
DEBIAN_DOCS = [Path("/usr/share/debian-reference/debian-reference.en.pdf")] + [
    Path(f"/usr/share/debian-reference/ch{n:02d}.en.html") for n in (1, 2, 3)
]


def document_sets() -> list[list[Path]]:
    """Debian's manual as PDF alone, then with three HTML chapters (unstructured parses those)."""
    found = [path for path in DEBIAN_DOCS if path.exists()]
    if found:
        return [found[:1], found]
    from fixtures.samples import make_pdf

    return [[make_pdf(Path(tempfile.mkdtemp()) / "generated.pdf", fact_page=1, pages=300)]]


def bench_stack(workdir: Path, embedder: Callable[[], Any] | None = None, **settings: Any) -> DocumentStack:
    """The server's own document stack (services.build_document_stack) in `workdir`, with the
    settings given and a user "bench" (id 1); `embedder` in place of the packaged model."""
    config = Config.from_env({}, data_dir=workdir, argon2_time_cost=1, argon2_memory_kib=8192, **settings)
    stack = build_document_stack(config, embedder)
    stack.users.create("bench", "bench password", "user")
    return stack


def bench_pipeline(docs: list[Path], dtype: str, threads: int) -> list[tuple[str, str]]:
    workdir = Path(tempfile.mkdtemp())
    stack = bench_stack(workdir, embedding_dtype=dtype, ingest_workers=threads, parse_timeout_s=300,
                        parse_memory_mb=4096, chunk_tokens=200, chunk_overlap_tokens=40)
    repository, pipeline, workers, embedder = stack.repository, stack.pipeline, stack.ingestion, stack.embedder()
    embedder.embed([" ".join(["warm up the kernels at realistic lengths"] * 25)] * 64)
    warm_up()  # as the server does at start: the parser process is ready before the first upload
    pipeline.chunker()
    document_ids = []
    for number, path in enumerate(docs):
        doc_id, doc_type = f"doc{number}", path.suffix.lstrip(".")
        target = workdir / "uploads" / "1" / f"{doc_id}.{doc_type}"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
        repository.create(Space.personal(1), id=doc_id, user_id=1, filename=path.name, type=doc_type, sha256=doc_id,
                          size_bytes=target.stat().st_size, storage_name=target.name)
        document_ids.append(doc_id)
    started = time.perf_counter()
    workers.start()  # the server's own workers pick the queued documents up
    while not all((doc := repository.load(doc_id)) is not None and doc.finished for doc_id in document_ids):
        time.sleep(0.05)
    workers.stop()
    failed = [doc_id for doc_id in document_ids if repository.load(doc_id).status != "ready"]
    assert not failed, failed
    pipeline_s = time.perf_counter() - started
    exported = stack.vectors.export_space(Space.personal(1))
    chunk_texts = exported["documents"] if exported else []
    started = time.perf_counter()
    for start in range(0, len(chunk_texts), 64):
        embedder.embed(chunk_texts[start:start + 64])
    raw_s = time.perf_counter() - started
    count = len(chunk_texts)
    label = "+".join(sorted({path.suffix.lstrip(".").upper() for path in docs}))
    return [
        (f"{label}: chunks", str(count)),
        (f"{label}: pipeline chunks/s (parse+chunk+embed+store)", f"{count / pipeline_s:.1f}"),
        (f"{label}: raw embedder chunks/s, same chunks", f"{count / raw_s:.1f}"),
        (f"{label}: pipeline / raw", f"{(count / pipeline_s) / (count / raw_s):.2f}x (goal >= 0.8x)"),
    ]


def bench_queries(total: int, per_user: int, queries: int) -> list[tuple[str, str]]:
    rng = np.random.default_rng(7)
    users = total // per_user
    per_user_store = make_client(Path(tempfile.mkdtemp()))
    shared_store = make_client(Path(tempfile.mkdtemp()))
    shared = shared_store.get_or_create_collection("shared", configuration={"hnsw": {"space": "cosine"}},
                                                   embedding_function=None)
    for user in range(users):
        vectors = rng.standard_normal((per_user, 384)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        ids = [f"u{user}:{i}" for i in range(per_user)]
        own = per_user_store.get_or_create_collection(f"docs_u{user}", configuration={"hnsw": {"space": "cosine"}},
                                                      embedding_function=None)
        texts = [f"chunk {i} of user {user}" for i in range(per_user)]
        metas = [{"document_id": f"d{user}", "chunk_index": i} for i in range(per_user)]
        for start in range(0, per_user, 5000):
            part = slice(start, start + 5000)
            own.add(ids=ids[part], embeddings=vectors[part], documents=texts[part], metadatas=metas[part])
            shared.add(ids=ids[part], embeddings=vectors[part], documents=texts[part],
                       metadatas=[{**meta, "user_id": user} for meta in metas[part]])
    target = users // 2
    store = VectorStore.on(per_user_store)
    probes = rng.standard_normal((queries, 384)).astype(np.float32)
    own_ms = _latencies(lambda v: store.query(Space.personal(target), v, 5), probes)
    shared_ms = _latencies(lambda v: shared.query(query_embeddings=v.reshape(1, -1), n_results=5,
                                                  where={"user_id": target}), probes)
    label = f"{total // 1000}k chunks, {users} users"
    return [
        (f"top-5 p50/p99 ms, {label}, collection per user (ours)", f"{_pct(own_ms, 50):.1f} / {_pct(own_ms, 99):.1f}"),
        (f"top-5 p50/p99 ms, {label}, shared + where filter", f"{_pct(shared_ms, 50):.1f} / {_pct(shared_ms, 99):.1f}"),
    ]


def bench_spaces(total: int, spaces: int, queries: int) -> list[tuple[str, str]]:
    """The retriever over 1, 5 and `spaces` workspaces holding `total` chunks between them."""
    rng = np.random.default_rng(11)
    probes = rng.standard_normal((queries, 384)).astype(np.float32)
    embedder = _ProbeEmbedder(probes)
    workdir = Path(tempfile.mkdtemp())
    stack = bench_stack(workdir, lambda: embedder, retrieval_mode="dense")  # vectors only: the fan-out
    repository, store, workspaces, retriever = stack.repository, stack.vectors, stack.workspaces, stack.retriever
    per_space = total // spaces
    ids = [workspaces.create(1, f"team {number}").id for number in range(spaces)]
    shared = make_client(workdir / "shared").get_or_create_collection(
        "shared", configuration={"hnsw": {"space": "cosine"}}, embedding_function=None)
    for number, workspace_id in enumerate(ids):
        space, doc_id = Space.workspace(workspace_id), f"{number:032x}"
        repository.create(space, id=doc_id, user_id=1, filename=f"doc{number}.txt", type="txt", sha256=doc_id,
                          size_bytes=1, storage_name=f"{doc_id}.txt")
        for start in range(0, per_space, 5000):
            count = min(5000, per_space - start)
            vectors = rng.standard_normal((count, 384)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            chunks = [Chunk(f"chunk {start + i} of workspace {number}", start + i, 8) for i in range(count)]
            store.add(space, doc_id, chunks, vectors)
            shared.add(ids=[f"{doc_id}:{chunk.index}" for chunk in chunks], embeddings=vectors,
                       documents=[chunk.text for chunk in chunks],
                       metadatas=[{"document_id": doc_id, "chunk_index": chunk.index, "space": space.key}
                                  for chunk in chunks])
        repository.claim(doc_id)
        repository.finish(doc_id, chunks=per_space, pages=None)
    rows = []
    for member_of in (1, 5, spaces):
        targets = [Target(Space.workspace(workspace_id)) for workspace_id in ids[:member_of]]
        latencies = _latencies(lambda _v, targets=targets: retriever.search_in(targets, "probe", 5), probes)
        keys = [Space.workspace(workspace_id).key for workspace_id in ids[:member_of]]
        peer = _latencies(lambda v, keys=keys: shared.query(query_embeddings=v.reshape(1, -1), n_results=5,
                                                           where={"space": {"$in": keys}}), probes)
        label = f"user in {member_of} of {spaces} workspaces, {total // 1000}k chunks in all"
        rows.append((f"top-5 search p50/p99 ms, {label}, collection per space (ours)",
                     f"{_pct(latencies, 50):.1f} / {_pct(latencies, 99):.1f}"
                     + (" (goal p50 <= 15)" if member_of == 5 else "")))
        rows.append((f"top-5 search p50/p99 ms, {label}, shared + where filter",
                     f"{_pct(peer, 50):.1f} / {_pct(peer, 99):.1f} (ours {_pct(latencies, 50) / _pct(peer, 50):.2f}x)"))
    return rows


class _ProbeEmbedder:
    """Hands the retriever the next probe vector as the query's embedding (the embedder's own
    time is measured by the pipeline rows, and is the same for any number of spaces)."""

    def __init__(self, probes: np.ndarray) -> None:
        self._probes, self._next = probes, 0

    def embed(self, _texts: list[str]) -> np.ndarray:
        vector = self._probes[self._next % len(self._probes)]
        self._next += 1
        return vector.reshape(1, -1)


def _latencies(query, probes: np.ndarray) -> list[float]:  # type: ignore[no-untyped-def]
    for vector in probes[:5]:
        query(vector)
    times = []
    for vector in probes:
        started = time.perf_counter()
        query(vector)
        times.append((time.perf_counter() - started) * 1000)
    return times


def bench_parsing(pages: int) -> list[tuple[str, str]]:
    """Parse speed in pages/s, each pair in one run: OCR against a text layer, tables against none."""
    import ingest.loaders.pdf as pdf_loader
    from fixtures.samples import filler_page, make_pdf_pages, make_scanned_pdf
    from ingest.loaders.ocr import OCR_DPI

    scratch = Path(tempfile.mkdtemp())
    texts = [filler_page(number) for number in range(1, pages + 1)]
    scanned = make_scanned_pdf(scratch / "scanned.pdf", list(texts))
    layered = make_pdf_pages(scratch / "layered.pdf", texts)
    pdf_loader.load_pdf(make_scanned_pdf(scratch / "warm.pdf", texts[:1]))  # the OCR models load once
    ocr_rate = pages / _timed(lambda: pdf_loader.load_pdf(scanned))
    text_rate = pages / _timed(lambda: pdf_loader.load_pdf(layered))
    rows = [(f"OCR pages/s ({pages} scanned A4 pages, rendered at {OCR_DPI} dpi)", f"{ocr_rate:.2f}"),
            ("text-layer pages/s, the same pages", f"{text_rate:.1f}"),
            ("OCR / text layer", f"{ocr_rate / text_rate:.3f}x")]
    manual = DEBIAN_DOCS[0]
    if manual.exists():
        total = pdf_loader.load_pdf(manual).pages or 1  # also warms the file cache
        with_tables = total / _timed(lambda: pdf_loader.load_pdf(manual))
        saved, pdf_loader.TABLE_MIN_PATHS = pdf_loader.TABLE_MIN_PATHS, 10**9
        try:
            without = total / _timed(lambda: pdf_loader.load_pdf(manual))
        finally:
            pdf_loader.TABLE_MIN_PATHS = saved
        rows += [("manual pages/s, tables looked for (pdfplumber)", f"{with_tables:.1f}"),
                 ("manual pages/s, no table search", f"{without:.1f}"),
                 ("with tables / without", f"{with_tables / without:.2f}x")]
    return rows


def bench_ocr_accuracy(pages: int) -> list[tuple[str, str]]:
    """Word accuracy of OCR on rendered pages of real PDFs: the share of the text layer's words
    (\\w+ runs, case kept, counted with repeats) that the OCR text holds. Order is not scored, as
    tables and columns may be read in another order; a glued or misspelt word is a miss."""
    import pypdfium2

    from ingest.loaders.ocr import OCR_DPI, read_image

    rows = []
    for path, first in OCR_ACCURACY_PDFS:
        if not path.exists():
            continue
        document = pypdfium2.PdfDocument(str(path))
        found = total = 0
        read_pages = range(first, min(first + pages, len(document)))
        started = time.perf_counter()
        for index in read_pages:
            page = document[index]
            truth = Counter(re.findall(r"\w+", page.get_textpage().get_text_range()))
            read = Counter(re.findall(r"\w+", read_image(page.render(scale=OCR_DPI / 72, grayscale=True).to_numpy())))
            found += sum((truth & read).values())
            total += sum(truth.values())
        elapsed = time.perf_counter() - started
        document.close()
        rows.append((f"OCR word accuracy, {path.name} pp. {first + 1}-{read_pages[-1] + 1} rendered at {OCR_DPI} dpi "
                     f"({total} words); pages/s", f"{found / max(total, 1):.3f}; {len(read_pages) / elapsed:.2f}"))
    return rows


def _timed(work) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def _pct(values: list[float], percent: int) -> float:
    return float(np.percentile(values, percent)) if values else float("nan")


def print_table(rows: list[tuple[str, str]]) -> None:
    width = max(len(name) for name, _ in rows)
    print(f"| {'measure'.ljust(width)} | value |")
    print(f"| {'-' * width} | --- |")
    for name, value in rows:
        print(f"| {name.ljust(width)} | {value} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dtype", default="auto", help="embedder dtype: auto, float32, bfloat16, float16")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1, help="ingestion worker threads (INGEST_WORKERS)")
    parser.add_argument("--skip-pipeline", action="store_true")
    parser.add_argument("--skip-queries", action="store_true")
    parser.add_argument("--skip-parsing", action="store_true")
    parser.add_argument("--ocr-pages", type=int, default=10)
    args = parser.parse_args()
    rows: list[tuple[str, str]] = []
    if not args.skip_pipeline:
        device, dtype = resolve_placement("auto", args.dtype)
        rows.append(("embedder; ingestion threads", f"{device} {dtype}; {args.threads}"))
        for docs in document_sets():
            rows.append(("documents", ", ".join(path.name for path in docs)))
            rows += bench_pipeline(docs, args.dtype, args.threads)
    if not args.skip_queries:
        rows += bench_queries(10_000, 1_000, args.queries)
        rows += bench_queries(100_000, 1_000, args.queries)
        rows += bench_spaces(100_000, 20, args.queries)
    if not args.skip_parsing:
        rows += bench_parsing(args.ocr_pages)
        rows += bench_ocr_accuracy(args.ocr_pages)
    print_table(rows)


if __name__ == "__main__":
    main()
