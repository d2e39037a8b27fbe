"""One document's ingestion: parse (sandboxed), chunk, embed in batches, store, with progress."""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ingest.chunking import Chunker
from ingest.sandbox import ParseFailed, ParseLimits, parse_in_sandbox
from rag.embedder import Embedder
from rag.errors import VectorStoreUnavailable
from rag.repository import DocumentRepository, DocumentView
from rag.types import Chunk
from rag.vector_store import VectorStore

log = logging.getLogger(__name__)

PARSED_PROGRESS = 0.1  # share of the bar for parsing; embedding fills the rest
OCR_PROGRESS = 0.8  # the share when pages are read by OCR (~1-2 s a page on 2 cores), page by page
STORE_BATCH = 64


class NoTextFound(Exception):
    pass


class IngestionPipeline:
    """Runs claimed documents to `ready` or `failed`; never leaves chunks of a failed document behind."""

    def __init__(self, repository: DocumentRepository, store: VectorStore, embedder: Callable[[], Embedder],
                 uploads_dir: Path, limits: ParseLimits, chunk_tokens: int, overlap_tokens: int) -> None:
        self._repository = repository
        self._store = store
        self._embedder = embedder
        self._uploads_dir = uploads_dir
        self._limits = limits
        self._chunk_tokens, self._overlap_tokens = chunk_tokens, overlap_tokens
        self._chunker: Chunker | None = None
        self._chunker_lock = threading.Lock()

    def file_path(self, document: DocumentView) -> Path:
        return document.file_in(self._uploads_dir)

    def run(self, document_id: str, on_progress: Callable[[float], None] | None = None) -> DocumentView | None:
        """Claim and ingest one queued document. None when another worker has it (or it is gone)."""
        if not self._repository.claim(document_id):
            return None
        document = self._repository.load(document_id)
        if document is None:
            return None
        try:
            self._ingest(document, on_progress or (lambda _fraction: None))
        except (ParseFailed, NoTextFound) as exc:
            self._give_up(document, str(exc))
        except VectorStoreUnavailable:
            log.warning("vector store unavailable while ingesting %s; it goes back to the queue", document_id)
            self._repository.release(document_id)  # the sweeper sends it again after JOB_STALE_S
        except Exception as exc:  # noqa: BLE001 - a failed document must never take the worker down
            log.exception("ingestion of %s failed", document_id)
            self._give_up(document, f"Ingestion failed unexpectedly ({type(exc).__name__})")
        return self._repository.load(document_id)

    def _ingest(self, document: DocumentView, on_progress: Callable[[float], None]) -> None:
        def parsing(done: int, total: int) -> None:
            self._report(document, OCR_PROGRESS * done / max(total, 1), on_progress)

        parsed = parse_in_sandbox(self.file_path(document), document.type, self._limits, parsing)
        chunks = self.chunker().chunk(parsed.sections)
        if not chunks:
            raise NoTextFound("No text could be extracted from the document (not even by OCR)")
        self._store.delete_document(document.space, document.id)  # a resumed job starts clean
        parsed_at = OCR_PROGRESS if parsed.ocr_pages else PARSED_PROGRESS
        self._report(document, parsed_at, on_progress)
        if not self._embed_and_store(document, chunks, parsed_at, on_progress):
            self._store.delete_document(document.space, document.id)  # deleted meanwhile
            return
        change = self._repository.finish(document.id, chunks=len(chunks), pages=parsed.pages,
                                         ocr_pages=parsed.ocr_pages,
                                         table_pages_skipped=parsed.table_pages_skipped)
        if change is None:  # deleted meanwhile
            self._store.delete_document(document.space, document.id)
            return
        self._store.apply(document.space, change)

    def _embed_and_store(self, document: DocumentView, chunks: list[Chunk], parsed_at: float,
                         on_progress: Callable[[float], None]) -> bool:
        """Embed batch n+1 while batch n is written to the store; False if the document vanished."""
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="store") as writer:
            pending: Future[bool] | None = None
            for start in range(0, len(chunks), STORE_BATCH):
                batch = chunks[start:start + STORE_BATCH]
                vectors = self._embedder().embed([chunk.text for chunk in batch])
                if pending is not None and not pending.result():
                    return False
                fraction = parsed_at + (1 - parsed_at) * 0.999 * (start + len(batch)) / len(chunks)
                pending = writer.submit(self._store_batch, document, batch, vectors, fraction, on_progress)
            return pending is None or pending.result()

    def _store_batch(self, document: DocumentView, batch: list[Chunk], vectors: np.ndarray, fraction: float,
                     on_progress: Callable[[float], None]) -> bool:
        self._store.add(document.space, document.id, batch, vectors)
        return self._report(document, fraction, on_progress)

    def chunker(self) -> Chunker:
        with self._chunker_lock:
            if self._chunker is None:
                embedder = self._embedder()
                self._chunker = Chunker(embedder.token_offsets, self._chunk_tokens, self._overlap_tokens,
                                        embedder.max_tokens)
            return self._chunker

    def _report(self, document: DocumentView, fraction: float, on_progress: Callable[[float], None]) -> bool:
        on_progress(fraction)
        return self._repository.progress(document.id, fraction)

    def _give_up(self, document: DocumentView, error: str) -> None:
        self._store.delete_document(document.space, document.id)
        self._repository.fail(document.id, error)
