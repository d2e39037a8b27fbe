"""Start-up integrity: the database checks itself, and every document's chunks match the store.

Run at start and then hourly by the maintenance schedule (its orphaned_chunks task), and by
`flask integrity check`; what it finds shows in /health as `degraded` with the reasons. `flask integrity repair` fixes what it can: a ready document
whose chunks are missing or extra is ingested again from its file, and chunks whose document is
gone are removed.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from sqlalchemy import select, text
from sqlalchemy.exc import DatabaseError

from common.database import Database
from rag.models import STATUS_QUEUED, STATUS_READY, Document
from rag.vector_store import VectorStore

log = logging.getLogger(__name__)


@dataclass
class IntegrityReport:
    database_problems: list[str] = field(default_factory=list)
    mismatched: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # doc -> (user, stored, expected)
    orphans: dict[int, list[str]] = field(default_factory=dict)  # user -> document ids without a row

    def problems(self) -> list[str]:
        found = list(self.database_problems)
        found += [f"document {doc}: {stored} chunks in the vector store, {expected} expected"
                  for doc, (_, stored, expected) in sorted(self.mismatched.items())]
        orphaned = sum(len(docs) for docs in self.orphans.values())
        if orphaned:
            found.append(f"chunks of {orphaned} deleted document(s) left in the vector store")
        return found


class IntegrityChecker:
    def __init__(self, db: Database, vectors: VectorStore) -> None:
        self._db, self._vectors = db, vectors
        self._last: IntegrityReport | None = None
        self._lock = threading.Lock()

    def problems(self) -> list[str]:
        """What the last check found (nothing before the first check ends)."""
        return self._last.problems() if self._last else []

    def check(self) -> IntegrityReport:
        report = IntegrityReport(database_problems=self._database_problems())
        if report.database_problems:  # nothing read from a damaged database can be trusted
            with self._lock:
                self._last = report
            return report
        documents: dict[int, dict[str, Document]] = {}
        with self._db.session() as session:
            for document in session.scalars(select(Document)).all():
                documents.setdefault(document.user_id, {})[document.id] = document
            users = [row[0] for row in session.execute(text("SELECT id FROM users"))]
        for user_id in users:
            stored = self._vectors.chunk_counts(user_id)
            mine = documents.get(user_id, {})
            for document_id, document in mine.items():
                if document.status == STATUS_READY and stored.get(document_id, 0) != document.chunks:
                    report.mismatched[document_id] = (user_id, stored.get(document_id, 0), document.chunks)
            orphans = sorted(set(stored) - set(mine))
            if orphans:
                report.orphans[user_id] = orphans
        with self._lock:
            self._last = report
        return report

    def repair(self) -> IntegrityReport:
        """Re-ingest mismatched documents (queued again) and remove orphaned chunks; then check again."""
        report = self.check()
        for document_id, (user_id, _, _) in report.mismatched.items():
            self._vectors.delete_document(user_id, document_id)
            with self._db.session() as session:
                document = session.get(Document, document_id)
                if document is not None:
                    document.status, document.progress, document.worker_id = STATUS_QUEUED, 0.0, None
        for user_id, document_ids in report.orphans.items():
            for document_id in document_ids:
                self._vectors.delete_document(user_id, document_id)
        return self.check()

    def remove_orphans(self) -> str:
        """Maintenance task: check, delete chunks whose document is gone, and warn about the rest."""
        report = self.check()
        removed = sum(len(document_ids) for document_ids in report.orphans.values())
        for user_id, document_ids in report.orphans.items():
            for document_id in document_ids:
                self._vectors.delete_document(user_id, document_id)
        report.orphans.clear()  # the last report (shown in /health) no longer lists what is gone
        for problem in report.problems():
            log.warning("integrity: %s (run `flask integrity repair`)", problem)
        return f"removed the chunks of {removed} deleted document(s)"

    def remove_stale_chunks(self) -> str:
        """Maintenance task: delete chunks numbered past their ready document's chunk count."""
        removed = 0
        with self._db.session() as session:
            ready = session.scalars(select(Document).where(Document.status == STATUS_READY)).all()
        for document in ready:
            removed += self._vectors.delete_chunks_from(document.user_id, document.id, document.chunks)
        return f"removed {removed} stale chunk(s)"

    def _database_problems(self) -> list[str]:
        if self._db.engine.dialect.name != "sqlite":
            return []
        try:
            with self._db.engine.connect() as connection:
                results = [row[0] for row in connection.exec_driver_sql("PRAGMA quick_check")]
        except DatabaseError as exc:
            return [f"SQLite database damaged: {exc.orig}"]
        return [] if results == ["ok"] else [f"SQLite quick_check: {'; '.join(results[:5])}"]
