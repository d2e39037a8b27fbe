"""Document rows: creation, ownership-checked reads, and the job state machine (claim, progress, finish)."""
from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from common.database import Database, utcnow
from common.errors import DocumentNotFound
from rag.models import STATUS_FAILED, STATUS_PROCESSING, STATUS_QUEUED, STATUS_READY, Document

# host:pid:boot-token. The token tells this process from an earlier one that had the same pid.
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass(frozen=True)
class DocumentView:
    id: str
    user_id: int
    filename: str
    type: str
    sha256: str
    size_bytes: int
    storage_name: str
    status: str
    progress: float
    chunks: int
    pages: int | None
    error: str | None
    created_at: datetime

    @classmethod
    def of(cls, row: Document) -> "DocumentView":
        return cls(row.id, row.user_id, row.filename, row.type, row.sha256, row.size_bytes, row.storage_name,
                   row.status, round(row.progress, 4), row.chunks, row.pages, row.error, row.created_at)

    @property
    def finished(self) -> bool:
        return self.status in (STATUS_READY, STATUS_FAILED)


class DuplicateDocument(Exception):
    def __init__(self, existing: DocumentView) -> None:
        super().__init__(existing.id)
        self.existing = existing


class DocumentRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    # --- what users see -------------------------------------------------------------------

    def create(self, **fields: object) -> DocumentView:
        """Insert a queued document; DuplicateDocument when this user already has the same bytes."""
        try:
            with self._db.session() as session:
                row = Document(**fields)
                session.add(row)
                session.flush()
                return DocumentView.of(row)
        except IntegrityError:
            existing = self.find_by_hash(int(fields["user_id"]), str(fields["sha256"]))  # type: ignore[arg-type]
            if existing is None:
                raise
            raise DuplicateDocument(existing) from None

    def find_by_hash(self, user_id: int, sha256: str) -> DocumentView | None:
        with self._db.session() as session:
            row = session.scalar(select(Document).where(Document.user_id == user_id, Document.sha256 == sha256))
            return DocumentView.of(row) if row else None

    def get(self, user_id: int, document_id: str) -> DocumentView:
        """The user's document; another user's is DocumentNotFound, exactly like a missing one."""
        with self._db.session() as session:
            row = session.get(Document, document_id)
            if row is None or row.user_id != user_id:
                raise DocumentNotFound("No such document")
            return DocumentView.of(row)

    def list(self, user_id: int) -> list[DocumentView]:
        with self._db.session() as session:
            rows = session.scalars(select(Document).where(Document.user_id == user_id)
                                   .order_by(Document.created_at.desc(), Document.id))
            return [DocumentView.of(row) for row in rows]

    def filenames(self, user_id: int, document_ids: set[str]) -> dict[str, str]:
        with self._db.session() as session:
            rows = session.execute(select(Document.id, Document.filename)
                                   .where(Document.user_id == user_id, Document.id.in_(document_ids)))
            return {row.id: row.filename for row in rows}

    def remove(self, user_id: int, document_id: str) -> DocumentView:
        document = self.get(user_id, document_id)
        with self._db.session() as session:
            session.execute(delete(Document).where(Document.id == document_id, Document.user_id == user_id))
        return document

    # --- the job state machine ------------------------------------------------------------

    def load(self, document_id: str) -> DocumentView | None:
        with self._db.session() as session:
            row = session.get(Document, document_id)
            return DocumentView.of(row) if row else None

    def claim(self, document_id: str) -> bool:
        """queued -> processing, atomically: of several workers exactly one wins."""
        return self._update(document_id, {Document.status: STATUS_QUEUED}, status=STATUS_PROCESSING,
                            progress=0.0, error=None, worker_id=WORKER_ID, heartbeat_at=utcnow())

    def progress(self, document_id: str, fraction: float) -> bool:
        """Record progress (and that the worker lives); False once the document is gone."""
        return self._update(document_id, {Document.status: STATUS_PROCESSING},
                            progress=min(max(fraction, 0.0), 1.0), heartbeat_at=utcnow())

    def finish(self, document_id: str, chunks: int, pages: int | None) -> bool:
        return self._update(document_id, {Document.status: STATUS_PROCESSING}, status=STATUS_READY,
                            progress=1.0, chunks=chunks, pages=pages, worker_id=None)

    def release(self, document_id: str) -> bool:
        """processing -> queued: a transient failure (the vector store is down); try again later."""
        return self._update(document_id, {Document.status: STATUS_PROCESSING}, status=STATUS_QUEUED, progress=0.0,
                            worker_id=None)

    def fail(self, document_id: str, error: str) -> bool:
        return self._update(document_id, {}, status=STATUS_FAILED, error=error[:2000], chunks=0, worker_id=None)

    def queued_ids(self) -> list[str]:
        with self._db.session() as session:
            return list(session.scalars(select(Document.id).where(Document.status == STATUS_QUEUED)
                                        .order_by(Document.created_at)))

    def touch_stale_queued(self, stale_after: timedelta) -> list[str]:
        """Queued documents untouched for `stale_after`, stamped now (so each is re-sent once a period)."""
        cutoff = utcnow() - stale_after
        with self._db.session() as session:
            rows = session.scalars(select(Document).where(Document.status == STATUS_QUEUED,
                                                          Document.updated_at < cutoff)).all()
            for row in rows:
                row.updated_at = utcnow()
            return [row.id for row in rows]

    def requeue_abandoned(self, stale_after: timedelta, is_alive: Callable[[str], bool]) -> list[str]:
        """Processing documents whose worker died (known dead, or silent too long) go back to queued."""
        cutoff = utcnow() - stale_after
        with self._db.session() as session:
            rows = session.scalars(select(Document).where(Document.status == STATUS_PROCESSING)).all()
            abandoned = [row for row in rows
                         if (row.heartbeat_at or cutoff) <= cutoff or not is_alive(row.worker_id or "")]
            for row in abandoned:
                row.status, row.worker_id, row.progress = STATUS_QUEUED, None, 0.0
            return [row.id for row in abandoned]

    def _update(self, document_id: str, expected: dict, **values: object) -> bool:  # type: ignore[type-arg]
        conditions = [Document.id == document_id] + [column == value for column, value in expected.items()]
        with self._db.session() as session:
            result = session.execute(update(Document).where(*conditions).values(**values))
            return bool(result.rowcount)
