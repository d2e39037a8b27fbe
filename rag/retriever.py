"""Search the caller's chunks: embed the query, ask the collections of the spaces they may read
(fanned out, merged by score), cite the sources."""
from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from rag.embedder import Embedder
from rag.errors import DocumentNotFound
from rag.keywords import coverage
from rag.repository import DocumentRepository, LiveVersion
from rag.spaces import Scope, Space, Spaces, Target
from rag.vector_store import Hit, VectorStore

EXCERPT_CHARS = 300


@dataclass(frozen=True)
class Source:
    """A cited chunk, in API.md's source shape (plus section and row where the format has them)."""

    document_id: str
    filename: str
    version: int
    page: int | None
    chunk_index: int
    score: float
    excerpt: str
    section: str | None
    row: int | None
    text: str
    workspace_id: str | None = None


class Retriever:
    def __init__(self, store: VectorStore, repository: DocumentRepository, embedder: Callable[[], Embedder],
                 spaces: Spaces, hybrid: bool = True,
                 on_search: Callable[[int | None, float], None] | None = None) -> None:
        """`hybrid`: fuse the keyword index's ranking with the vectors' (RETRIEVAL_MODE=hybrid,
        the default); False searches by vectors alone. `on_search(user id, seconds)` hears of
        every search (the admins' search statistics)."""
        self.hybrid = hybrid
        self._on_search = on_search
        self._store = store
        self._repository = repository
        self._embedder = embedder
        self._spaces = spaces

    def search(self, user_id: int, query: str, k: int, min_score: float = -1.0,
               scope: Scope | None = None) -> list[Source]:
        """The k best chunks for `query` that the caller may read now (within `scope`; None:
        everything), best first, from live document versions only."""
        return self.search_in(self.targets(user_id, scope or Scope(), strict=False), query, k, min_score, user_id)

    def targets(self, user_id: int, scope: Scope, strict: bool) -> list[Target]:
        """The spaces (and single documents in others) a search in `scope` opens, by the caller's
        membership now. With `strict`, naming anything the caller cannot read is a 404
        (a new scope); otherwise it is left out (a later question: access may have ended)."""
        spaces, documents = self._spaces.scoped(user_id, scope, strict)
        whole = {space.key for space in spaces}
        singles: dict[Space, set[str]] = {}
        found = self._repository.live_ids(documents) if documents else {}
        for family_id in documents:
            space, live = found.get(family_id, (None, None))
            if space is None or not self._spaces.can_read(user_id, space):
                if strict:
                    raise DocumentNotFound(f"No such document: {family_id}", {"document_id": family_id})
                continue
            if space.key not in whole and live is not None:
                singles.setdefault(space, set()).add(live)
        return [Target(space) for space in spaces] + [Target(space, frozenset(ids)) for space, ids in singles.items()]

    def search_in(self, targets: list[Target], query: str, k: int, min_score: float = -1.0,
                  user_id: int | None = None) -> list[Source]:
        """The k best chunks over these targets. Each space is searched by its vectors and, in
        hybrid mode, by its keyword index; the two rankings (each merged over the spaces) are
        fused by their relative scores (`fuse`). The spaces are searched at the same time (Chroma and
        SQLite release the GIL while they search): 5 spaces at 100k chunks in all take about the
        time of 2 or 3 one after the other (`make bench-ingest`)."""
        started = time.perf_counter()
        found = self._ranked(targets, query, k, min_score) if targets else []
        if self._on_search is not None:
            self._on_search(user_id, time.perf_counter() - started)
        return found

    def _ranked(self, targets: list[Target], query: str, k: int, min_score: float) -> list[Source]:
        vector = self._embedder().embed([query])[0]
        depth = max(k, FUSION_CANDIDATES) if self.hybrid else k
        if len(targets) == 1:
            found = [self._search_one(targets[0], vector, query, depth)]
        else:
            found = list(_FAN_OUT.map(lambda target: self._search_one(target, vector, query, depth), targets))
        versions = {hit.chunk_id: live for dense, keyword in found for hit, live in (*dense, *keyword)}
        dense_hits = sorted((hit for dense, _ in found for hit, _live in dense), key=lambda hit: -hit.score)
        keyword_hits = sorted((hit for _, keyword in found for hit, _live in keyword),
                              key=lambda hit: -(hit.keyword or 0.0))
        ranked = fuse(dense_hits[:depth], keyword_hits[:depth], k) if self.hybrid else dense_hits[:k]
        return [_source(hit, versions[hit.chunk_id], query) for hit in ranked
                if hit.score >= min_score or (self.hybrid and _words_match(query, hit.text))]

    def _search_one(self, target: Target, vector: np.ndarray, query: str,
                    k: int) -> tuple[list[tuple[Hit, LiveVersion]], list[tuple[Hit, LiveVersion]]]:
        """One space's k best live chunks by vector and by keyword, with their versions. Its live
        collection also holds chunks of versions still being ingested (and, briefly, of a version
        just replaced); those are skipped, and the store is asked for more when they crowd the top k."""
        wanted = k
        keyword = self._store.keyword_query(target.space, vector, query, k, target.documents) if self.hybrid else []
        for _attempt in range(FETCH_ATTEMPTS):
            found = self._store.query(target.space, vector, wanted, target.documents)
            live = self._repository.live_versions(target.space, {hit.document_id for hit in (*found, *keyword)})
            hits = [hit for hit in found if hit.document_id in live]
            if len(hits) >= k or len(found) < wanted:
                break
            wanted *= 4
        return ([(hit, live[hit.document_id]) for hit in hits[:k]],
                [(hit, live[hit.document_id]) for hit in keyword if hit.document_id in live])


def _words_match(question: str, text: str) -> bool:
    """A chunk holding most of the question's words is relevant even when the vectors disagree
    (a question in German: MiniLM is an English model, the keyword index is not)."""
    found, share = coverage(question, text)
    return found >= MATCHED_WORDS and share >= MATCHED_SHARE


def _source(hit: Hit, live: LiveVersion, query: str) -> Source:
    return Source(document_id=live.family_id, filename=live.filename, version=live.version, page=hit.page,
                  chunk_index=hit.chunk_index, score=hit.score, excerpt=excerpt(hit.text, query),
                  section=hit.section, row=hit.row, text=hit.text, workspace_id=live.workspace_id)


def fuse(dense: list[Hit], keyword: list[Hit], k: int) -> list[Hit]:
    """Relative score fusion of a vector ranking and a keyword ranking: each list's scores are
    scaled to 0-1 over its own candidates (min-max), and a chunk scores DENSE_WEIGHT times its
    scaled cosine plus the rest times its scaled keyword score (0 where a list lacks it); the k
    best. Measured on Debian's manual (`make bench-retrieval`, 2026-12-01) against reciprocal
    rank fusion: recall@1 0.623 / 0.566 (PDF / HTML) against RRF's 0.591 / 0.554 at the same
    recall@5, because a keyword score far above the rest (an exact code, a rare name) counts
    for more than its rank; DENSE_WEIGHT and FUSION_CANDIDATES were chosen there too."""
    dense_scaled = _scaled({hit.chunk_id: hit.score for hit in dense})
    keyword_scaled = _scaled({hit.chunk_id: hit.keyword or 0.0 for hit in keyword})
    hits = {hit.chunk_id: hit for hit in (*dense, *keyword)}
    fused = {chunk: DENSE_WEIGHT * dense_scaled.get(chunk, 0.0) + (1 - DENSE_WEIGHT) * keyword_scaled.get(chunk, 0.0)
             for chunk in hits}
    order = sorted(fused, key=lambda chunk: (-fused[chunk], -hits[chunk].score))
    return [hits[chunk] for chunk in order[:k]]


def _scaled(scores: dict[str, float]) -> dict[str, float]:
    if not scores:
        return {}
    low, high = min(scores.values()), max(scores.values())
    return {chunk: (score - low) / (high - low) if high > low else 1.0 for chunk, score in scores.items()}


DENSE_WEIGHT = 0.5
MATCHED_WORDS, MATCHED_SHARE = 3, 0.6  # below min_score, a chunk still counts with this much of the question
FUSION_CANDIDATES = 20  # from each ranking, per search
FETCH_ATTEMPTS = 3
_FAN_OUT = ThreadPoolExecutor(max_workers=min(8, 2 * (os.cpu_count() or 1)), thread_name_prefix="fan-out")


def excerpt(text: str, query: str, limit: int = EXCERPT_CHARS) -> str:
    """About `limit` characters of `text` around the sentence sharing most words with `query`."""
    sentences = [" ".join(part.split()) for part in _SENTENCE_END.split(text) if part.strip()]
    if not sentences:
        return ""
    wanted = _words(query)
    best = max(range(len(sentences)), key=lambda i: (len(_words(sentences[i]) & wanted), -i))
    start = end = best
    length = len(sentences[best])
    while end + 1 < len(sentences) and length + len(sentences[end + 1]) + 1 <= limit:
        end += 1
        length += len(sentences[end]) + 1
    while start > 0 and length + len(sentences[start - 1]) + 1 <= limit:
        start -= 1
        length += len(sentences[start]) + 1
    joined = " ".join(sentences[start:end + 1])
    if len(joined) > limit:
        joined = joined[: limit - 1].rsplit(" ", 1)[0] + "…"
    return ("… " if start > 0 else "") + joined + (" …" if end + 1 < len(sentences) and not joined.endswith("…") else "")


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n{2,}")


def _words(text: str) -> set[str]:
    return {word for word in re.findall(r"\w+", text.lower()) if len(word) >= 3}
