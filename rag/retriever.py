"""Search the caller's own chunks: embed the query, ask the user's collection, cite the sources."""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from rag.embedder import Embedder
from rag.repository import DocumentRepository
from rag.vector_store import VectorStore

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


class Retriever:
    def __init__(self, store: VectorStore, repository: DocumentRepository, embedder: Callable[[], Embedder]) -> None:
        self._store = store
        self._repository = repository
        self._embedder = embedder

    def search(self, user_id: int, query: str, k: int, min_score: float = -1.0) -> list[Source]:
        """The user's k best chunks for `query`, best first, from live document versions only.

        The live collection also holds chunks of versions still being ingested (and, briefly, of a
        version just replaced); those are skipped, and the store is asked for more when they crowd
        the top k."""
        vector = self._embedder().embed([query])[0]
        wanted = k
        for _attempt in range(FETCH_ATTEMPTS):
            found = self._store.query(user_id, vector, wanted)
            live = self._repository.live_versions(user_id, {hit.document_id for hit in found})
            hits = [hit for hit in found if hit.document_id in live]
            if len(hits) >= k or len(found) < wanted:
                break
            wanted *= 4
        return [
            Source(document_id=live[hit.document_id].family_id, filename=live[hit.document_id].filename,
                   version=live[hit.document_id].version, page=hit.page, chunk_index=hit.chunk_index,
                   score=hit.score, excerpt=excerpt(hit.text, query), section=hit.section, row=hit.row,
                   text=hit.text)
            for hit in hits[:k]
            if hit.score >= min_score
        ]


FETCH_ATTEMPTS = 3


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
