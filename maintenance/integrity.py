"""Start-up integrity: the database checks itself, and every document's chunks match the store.

Run at start and then hourly by the maintenance schedule (its orphaned_chunks task), and by
`flask integrity check`; what it finds shows in /health as `degraded` with the reasons.
`flask integrity repair` fixes what it can: chunks whose document is gone are removed, chunks of
a version in the wrong collection (live or archive) are moved, a space's keyword index that does
not match its live vectors is rebuilt from their texts, and a ready document whose chunks
are still missing or extra is ingested again from its file.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from sqlalchemy import select, text
from sqlalchemy.exc import DatabaseError

from common.database import Database
from rag.models import STATUS_QUEUED, STATUS_READY, Document
from rag.spaces import Space
from rag.vector_store import VectorStore

log = logging.getLogger(__name__)


@dataclass
class IntegrityReport:
    database_problems: list[str] = field(default_factory=list)
    mismatched: dict[str, tuple[Space, int, int]] = field(default_factory=dict)  # doc -> (space, stored, expected)
    orphans: dict[Space, list[str]] = field(default_factory=dict)  # space -> document ids without a row
    misplaced: dict[str, tuple[Space, bool]] = field(default_factory=dict)  # doc -> (space, belongs in the archive)
    keywords_behind: list[Space] = field(default_factory=list)  # keyword index out of step with the live vectors

    def problems(self) -> list[str]:
        found = list(self.database_problems)
        found += [f"document {doc}: {stored} chunks in the vector store, {expected} expected"
                  for doc, (_, stored, expected) in sorted(self.mismatched.items())]
        orphaned = sum(len(docs) for docs in self.orphans.values())
        if orphaned:
            found.append(f"chunks of {orphaned} deleted document(s) left in the vector store")
        if self.misplaced:
            found.append(f"chunks of {len(self.misplaced)} document version(s) in the wrong collection "
                         "(live or archive)")
        if self.keywords_behind:
            found.append(f"the keyword index of {len(self.keywords_behind)} space(s) does not match their vectors")
        return found


@dataclass(frozen=True)
class RepairOutcome:
    requeued: int  # documents queued for re-ingestion
    removed: int  # deleted documents whose chunks were removed
    moved: int  # versions whose chunks were moved to the right collection
    after: IntegrityReport


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
        if not report.database_problems:  # nothing read from a damaged database can be trusted
            self._check_chunks(report)
        with self._lock:
            self._last = report
        return report

    def _check_chunks(self, report: IntegrityReport) -> None:
        """Every ready version's chunks are where they belong (the live version's in the live
        collection, the others' in the archive), as many as its row says; none without a row."""
        documents: dict[Space, dict[str, Document]] = {}
        with self._db.session() as session:
            for document in session.scalars(select(Document)).all():
                documents.setdefault(Space.of(document.user_id, document.workspace_id), {})[document.id] = document
            spaces = [Space.personal(row[0]) for row in session.execute(text("SELECT id FROM users"))]
            spaces += [Space.workspace(row[0]) for row in session.execute(text("SELECT id FROM workspaces"))]
        for space in dict.fromkeys([*spaces, *documents]):
            live, archived = self._vectors.chunk_counts(space), self._vectors.chunk_counts(space, archived=True)
            mine = documents.get(space, {})
            for document_id, document in mine.items():
                if document.status != STATUS_READY:
                    continue
                home, away = (live, archived) if document.is_live else (archived, live)
                if away.get(document_id, 0):
                    report.misplaced[document_id] = (space, not document.is_live)
                elif home.get(document_id, 0) != document.chunks:
                    report.mismatched[document_id] = (space, home.get(document_id, 0), document.chunks)
            orphans = sorted((set(live) | set(archived)) - set(mine))
            if orphans:
                report.orphans[space] = orphans
            if self._vectors.keywords.enabled and self._vectors.keywords.counts(space) != live:
                report.keywords_behind.append(space)

    def repair(self) -> RepairOutcome:
        """Move misplaced chunks home and remove orphaned ones; then re-ingest documents whose
        chunks are still missing or extra (queued again); then check again."""
        removed, moved = self.tidy()
        report = self.check()
        for document_id, (space, _, _) in report.mismatched.items():
            self._vectors.delete_document(space, document_id)
            with self._db.session() as session:
                document = session.get(Document, document_id)
                if document is not None:
                    document.status, document.progress, document.worker_id = STATUS_QUEUED, 0.0, None
        return RepairOutcome(requeued=len(report.mismatched), removed=removed, moved=moved, after=self.check())

    def tidy(self) -> tuple[int, int]:
        """What needs no re-embedding: chunks whose document is gone are deleted, chunks in the
        wrong collection moved, a keyword index out of step rebuilt from its space's vectors;
        (orphaned documents, misplaced versions) handled."""
        report = self.check()
        for space, document_ids in report.orphans.items():
            for document_id in document_ids:
                self._vectors.delete_document(space, document_id)
        for document_id, (space, archived) in report.misplaced.items():
            self._vectors.move(space, document_id, archived=archived)
        for space in report.keywords_behind:
            self._vectors.reindex_keywords(space)
        return sum(len(ids) for ids in report.orphans.values()), len(report.misplaced)

    def remove_orphans(self) -> str:
        """Maintenance task: delete chunks whose document is gone, put misplaced ones back, check
        again, and warn about the rest."""
        removed, moved = self.tidy()
        for problem in (self.check() if removed or moved else self._last or IntegrityReport()).problems():
            log.warning("integrity: %s (run `flask integrity repair`)", problem)
        return f"removed the chunks of {removed} deleted document(s), moved {moved} misplaced version(s)"

    def remove_stale_chunks(self) -> str:
        """Maintenance task: delete chunks numbered past their ready document's chunk count."""
        removed = 0
        with self._db.session() as session:
            ready = session.scalars(select(Document).where(Document.status == STATUS_READY)).all()
        for document in ready:
            removed += self._vectors.delete_chunks_from(Space.of(document.user_id, document.workspace_id),
                                                        document.id, document.chunks)
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
