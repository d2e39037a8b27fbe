"""Chunks and their vectors in Chroma, one live collection per space (a user's personal space or
a workspace), and one archive.

The live collection holds the chunks answers may come from (and those of versions being ingested);
the archive holds the chunks of a document's other ready versions, moved there when a newer version
goes live and back on restore: old versions never mix into retrieval, and need no re-embedding.

Isolation lives in the store itself: every call names the space, and a query only ever touches
the collections of the spaces it is given (those the caller may read), so no filter can be
forgotten. It is also the fast design: a `where` filter on an owner field over one shared
collection measured 94 ms for a top-5 query at 100k chunks against 4 ms unfiltered; a per-space
collection is searched at its own size (bench/).
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import chromadb
import httpx
import numpy as np
from chromadb.config import Settings
from chromadb.errors import NotFoundError

from rag.errors import VectorStoreUnavailable
from rag.keywords import KeywordIndex, KeywordRow, NoKeywords
from rag.spaces import Space
from rag.types import Chunk, VersionChange


@dataclass(frozen=True)
class Hit:
    chunk_id: str
    document_id: str
    chunk_index: int
    text: str
    score: float
    page: int | None
    section: str | None
    row: int | None
    keyword: float | None = None  # the keyword index's score, for a keyword hit


def chunk_id(document_id: str, index: int) -> str:
    """Deterministic: a retried ingestion overwrites the same ids instead of adding duplicates."""
    return f"{document_id}:{index}"


def make_client(path: Path, host: str = "", port: int = 8000) -> Any:
    """PersistentClient under the data directory, or HttpClient when CHROMA_HOST is set."""
    settings = Settings(anonymized_telemetry=False, allow_reset=False)
    if host:
        return chromadb.HttpClient(host=host, port=port, settings=settings)
    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path), settings=settings)




class VectorStore:
    """One collection per space (and its archive). With a Chroma server, the connection is made on first use and
    made again after a failure, so the app starts, and recovers, while the server is down."""

    def __init__(self, connect: Callable[[], Any], keywords: KeywordIndex | None = None) -> None:
        """`keywords`: the keyword index kept in step with each space's live collection (none:
        dense-only)."""
        self.keywords = keywords or NoKeywords()
        self._connect = connect
        self._client: Any = None
        self._lock = threading.Lock()
        self._searched: dict[str, Any] = {}  # live collections queried before, by name (see query)

    @classmethod
    def on(cls, client: Any, keywords: KeywordIndex | None = None) -> "VectorStore":
        return cls(lambda: client, keywords)

    @staticmethod
    def collection_name(space: Space, archived: bool = False) -> str:
        return f"docs_{space.key}_archive" if archived else f"docs_{space.key}"

    def add(self, space: Space, document_id: str, chunks: list[Chunk], vectors: np.ndarray) -> None:
        if not chunks:
            return
        ids = [chunk_id(document_id, chunk.index) for chunk in chunks]
        with self._available():
            self._collection(space, create=True).upsert(
                ids=ids, embeddings=vectors, documents=[chunk.text for chunk in chunks],
                metadatas=[_metadata(document_id, chunk) for chunk in chunks])
        self.keywords.add(space, [KeywordRow(id_, document_id, chunk.index, chunk.text)
                                  for id_, chunk in zip(ids, chunks, strict=True)])

    def delete_document(self, space: Space, document_id: str) -> None:
        """Remove a document version's chunks, live or archived."""
        with self._available():
            for collection in self._both(space):
                collection.delete(where={"document_id": document_id})
        self.keywords.delete_document(space, document_id)

    def drop_space(self, space: Space) -> None:
        """Remove every chunk of the space (its collections)."""
        with self._available():
            self._searched.pop(self.collection_name(space), None)
            for archived in (False, True):
                if self._collection(space, archived=archived) is not None:
                    self._api().delete_collection(self.collection_name(space, archived))
        self.keywords.drop_space(space)

    def count(self, space: Space, document_id: str | None = None) -> int:
        """How many chunks the space (or one document version) has, live and archived."""
        with self._available():
            if document_id is None:
                return sum(collection.count() for collection in self._both(space))
            return sum(len(collection.get(where={"document_id": document_id}, include=[])["ids"])
                       for collection in self._both(space))

    def move(self, space: Space, document_id: str, archived: bool) -> int:
        """Move a version's chunks into the archive (archived=True) or back into the live
        collection, vectors and all; how many moved. Written before deleted: a crash in between
        leaves a copy, which the integrity check finds and the maintenance task removes."""
        with self._available():
            source = self._collection(space, archived=not archived)
            if source is None:
                return 0
            found = source.get(where={"document_id": document_id}, include=["embeddings", "documents", "metadatas"])
            if not found["ids"]:
                return 0
            self._collection(space, create=True, archived=archived).upsert(
                ids=found["ids"], embeddings=found["embeddings"], documents=found["documents"],
                metadatas=found["metadatas"])
            source.delete(ids=found["ids"])
        if archived:
            self.keywords.delete_document(space, document_id)
        else:
            self.keywords.add(space, _keyword_rows(found))
        return len(found["ids"])

    def apply(self, space: Space, change: VersionChange) -> None:
        """Bring the new live version's chunks in before the old one's go out."""
        for document_id in change.to_live:
            self.move(space, document_id, archived=False)
        for document_id in change.to_archive:
            self.move(space, document_id, archived=True)

    def query(self, space: Space, vector: np.ndarray, k: int, only: frozenset[str] | None = None) -> list[Hit]:
        """The space's k nearest chunks (of the version ids `only`, when given), best first.
        No other space's collection is opened."""
        where = None if only is None else {"document_id": {"$in": sorted(only)}}
        with self._available():
            found = self._query(space, query_embeddings=vector.reshape(1, -1), n_results=k, where=where,
                                include=["documents", "metadatas", "distances"])
        if found is None:
            return []
        return [
            _hit(chunk, text, meta, distance)
            for chunk, text, meta, distance in zip(found["ids"][0], found["documents"][0],
                                                   found["metadatas"][0], found["distances"][0], strict=True)
        ]

    def delete_chunks_from(self, space: Space, document_id: str, first_index: int) -> int:
        """Delete a document version's chunks numbered `first_index` and up; how many there were."""
        removed = 0
        with self._available():
            for collection in self._both(space):
                where = {"$and": [{"document_id": document_id}, {"chunk_index": {"$gte": first_index}}]}
                stale = collection.get(where=where, include=[])["ids"]
                if stale:
                    collection.delete(ids=stale)
                removed += len(stale)
        self.keywords.delete_chunks_from(space, document_id, first_index)
        return removed

    def chunk_counts(self, space: Space, archived: bool = False) -> dict[str, int]:
        """How many chunks each document version of the space has in the live collection (or the archive)."""
        with self._available():
            collection = self._collection(space, archived=archived)
            if collection is None:
                return {}
            counts: dict[str, int] = {}
            for meta in collection.get(include=["metadatas"])["metadatas"]:
                counts[str(meta["document_id"])] = counts.get(str(meta["document_id"]), 0) + 1
            return counts

    def export_space(self, space: Space, archived: bool = False) -> dict[str, Any] | None:
        """Every chunk of the space's live collection (or archive): ids, embeddings, texts,
        metadata; None when there is no such collection."""
        with self._available():
            collection = self._collection(space, archived=archived)
            if collection is None:
                return None
            found = collection.get(include=["embeddings", "documents", "metadatas"])
            return {"ids": list(found["ids"]), "embeddings": np.asarray(found["embeddings"], dtype=np.float32),
                    "documents": list(found["documents"]), "metadatas": list(found["metadatas"])}

    def import_space(self, space: Space, data: dict[str, Any], archived: bool = False, batch: int = 1000) -> None:
        """Put exported chunks back (upsert: a retried restore does not duplicate)."""
        with self._available():
            collection = self._collection(space, create=True, archived=archived)
            for start in range(0, len(data["ids"]), batch):
                end = start + batch
                collection.upsert(ids=data["ids"][start:end], embeddings=data["embeddings"][start:end],
                                  documents=data["documents"][start:end], metadatas=data["metadatas"][start:end])
        if not archived:
            self.keywords.add(space, _keyword_rows(data))

    def keyword_query(self, space: Space, vector: np.ndarray, question: str, k: int,
                      only: frozenset[str] | None = None) -> list[Hit]:
        """The space's k best chunks by the keyword index, best first, each with its cosine
        similarity to `vector` as its score (read from the live collection, so a keyword hit and a
        vector hit are scored alike)."""
        found = self.keywords.search(space, question, k, only)
        if not found:
            return []
        with self._available():
            collection = self._collection(space)
            if collection is None:
                return []
            stored = collection.get(ids=[hit.chunk_id for hit in found], include=["embeddings", "documents", "metadatas"])
        similarity = np.asarray(stored["embeddings"], dtype=np.float32) @ vector.astype(np.float32)
        by_id = {chunk: _hit(chunk, text, meta, 1.0 - float(score))
                 for chunk, text, meta, score in zip(stored["ids"], stored["documents"], stored["metadatas"],
                                                      similarity, strict=True)}
        return [replace(by_id[hit.chunk_id], keyword=hit.score) for hit in found if hit.chunk_id in by_id]

    def reindex_keywords(self, space: Space) -> int:
        """Rebuild the space's keyword index from its live collection (integrity repair); how
        many chunks it now holds."""
        self.keywords.drop_space(space)
        data = self.export_space(space)
        if data is None:
            return 0
        self.keywords.add(space, _keyword_rows(data))
        return len(data["ids"])

    def _api(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._connect()
            return self._client

    @contextmanager
    def _available(self) -> Iterator[None]:
        """Connection failures become VectorStoreUnavailable (503), and the next call reconnects."""
        try:
            yield
        except (httpx.TransportError, ConnectionError) as exc:
            self._client = None
            self._searched.clear()
            raise VectorStoreUnavailable("The vector store (Chroma server) is unavailable; retry shortly") from exc
        except ValueError as exc:
            if "connect" not in str(exc).lower():
                raise
            self._client = None
            self._searched.clear()
            raise VectorStoreUnavailable("The vector store (Chroma server) is unavailable; retry shortly") from exc

    def _collection(self, space: Space, create: bool = False, archived: bool = False) -> Any:
        name = self.collection_name(space, archived)
        client = self._api()
        if create:
            return client.get_or_create_collection(
                name, configuration={"hnsw": {"space": "cosine"}}, embedding_function=None
            )
        try:
            return client.get_collection(name, embedding_function=None)
        except NotFoundError:
            return None

    def _query(self, space: Space, **request: Any) -> Any:
        """Query the space's live collection, None when it has none. The collection is looked up
        once and kept (a lookup costs about half a millisecond, and a question over 5 spaces
        needs 5); one dropped since (by another process, too) is looked up again."""
        name = self.collection_name(space)
        for _attempt in range(2):
            collection = self._searched.get(name) or self._collection(space)
            if collection is None:
                return None
            try:
                found = collection.query(**request)
            except NotFoundError:
                self._searched.pop(name, None)
                continue
            self._searched[name] = collection
            return found
        return None

    def _both(self, space: Space) -> list[Any]:
        """The space's live collection and archive, those that exist."""
        found = (self._collection(space), self._collection(space, archived=True))
        return [collection for collection in found if collection is not None]


def _keyword_rows(found: dict[str, Any]) -> list[KeywordRow]:
    """Keyword rows of chunks as Chroma returns them (ids, texts, metadata)."""
    return [KeywordRow(chunk, str(meta["document_id"]), int(meta["chunk_index"]), text)
            for chunk, text, meta in zip(found["ids"], found["documents"], found["metadatas"], strict=True)]


def _metadata(document_id: str, chunk: Chunk) -> dict[str, Any]:
    meta: dict[str, Any] = {"document_id": document_id, "chunk_index": chunk.index}
    for key in ("page", "section", "row"):
        value = getattr(chunk, key)
        if value is not None:
            meta[key] = value
    return meta


def _hit(chunk: str, text: str, meta: dict[str, Any], distance: float) -> Hit:
    return Hit(chunk_id=chunk, document_id=str(meta["document_id"]), chunk_index=int(meta["chunk_index"]),
               text=text, score=round(1.0 - float(distance), 4), page=meta.get("page"),
               section=meta.get("section"), row=meta.get("row"))
