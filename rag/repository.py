"""Document rows: creation, ownership-checked reads, and the job state machine (claim, progress, finish)."""
from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from common.database import Database, affected_rows, utcnow
from rag.errors import DocumentNotFound, LastVersion, QuotaExceeded, VersionNotReady
from rag.models import STATUS_FAILED, STATUS_PROCESSING, STATUS_QUEUED, STATUS_READY, Document
from rag.spaces import Space
from rag.types import VersionChange

# host:pid:boot-token. The token tells this process from an earlier one that had the same pid.
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass(frozen=True)
class DocumentView:
    """One version's row. `id` is the version's own id (files, chunks, jobs); `family_id` is the
    document's public id, shared by its versions. Read through `get`/`list`, `versions` and
    `live_version` describe the whole document."""

    id: str
    user_id: int
    family_id: str
    version: int
    is_head: bool
    is_live: bool
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
    ocr_pages: int = 0
    table_pages_skipped: int = 0
    versions: int = 1
    live_version: int | None = None
    workspace_id: str | None = None

    @classmethod
    def of(cls, row: Document) -> "DocumentView":
        return cls(row.id, row.user_id, row.family_id, row.version, row.is_head, row.is_live, row.filename,
                   row.type, row.sha256, row.size_bytes, row.storage_name, row.status, round(row.progress, 4),
                   row.chunks, row.pages, row.error, row.created_at, ocr_pages=row.ocr_pages or 0,
                   table_pages_skipped=row.table_pages_skipped or 0,
                   workspace_id=row.workspace_id)

    @property
    def space(self) -> Space:
        """Where the document lives: its workspace, or its uploader's personal space."""
        return Space.of(self.user_id, self.workspace_id)

    def file_in(self, uploads_dir: Path) -> Path:
        """This version's stored file: <uploads>/<space folder>/<server-made name>."""
        return uploads_dir / self.space.folder / self.storage_name

    @property
    def finished(self) -> bool:
        return self.status in (STATUS_READY, STATUS_FAILED)


def _check_quota(session: Session, user_id: int, size: int, quota_bytes: int) -> None:
    used = session.scalar(select(func.coalesce(func.sum(Document.size_bytes), 0)).where(Document.user_id == user_id))
    if int(used or 0) + size > quota_bytes:
        mib = 1024 * 1024
        raise QuotaExceeded(f"This upload ({size / mib:.1f} MB) would take you past your storage quota of "
                            f"{quota_bytes / mib:.0f} MB ({int(used or 0) / mib:.1f} MB used); delete documents or "
                            "versions you no longer need", {"quota_bytes": quota_bytes, "used_bytes": int(used or 0),
                                                            "size_bytes": size})


@dataclass(frozen=True)
class LiveVersion:
    """What a retrieved chunk's citation needs from its (live) version."""

    family_id: str
    filename: str
    version: int
    workspace_id: str | None


def in_space(space: Space) -> ColumnElement[bool]:
    """The rows of one space: a workspace's, or a user's personal ones (not those they put in workspaces)."""
    if space.workspace_id is not None:
        return Document.workspace_id == space.workspace_id
    return and_(Document.user_id == space.owner_id, Document.workspace_id.is_(None))


def _belongs(row: Document, space: Space) -> bool:
    return row.workspace_id == space.workspace_id and (space.workspace_id is not None or row.user_id == space.owner_id)


class DuplicateDocument(Exception):
    def __init__(self, existing: DocumentView) -> None:
        super().__init__(existing.id)
        self.existing = existing


class DocumentRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    # --- what users see -------------------------------------------------------------------

    def create(self, space: Space, **fields: Any) -> DocumentView:
        """Insert version 1 of a new document; DuplicateDocument when the space has the same bytes."""
        return self.add(space, None, match_name=False, **fields)

    def add(self, space: Space, family_id: str | None, match_name: bool, quota_bytes: int = 0,
            **fields: Any) -> DocumentView:
        """Insert an upload (by `fields["user_id"]`) into `space` as the next version (the head;
        the live version answers until it is ready) of `family_id`, or with `match_name` of the
        space's newest document of that file name, or else as a new document. The uploader's row
        (and the workspace's) is locked first, so simultaneous uploads are numbered in turn and
        never both start a document of one name. DuplicateDocument when the space has the same
        bytes; QuotaExceeded when the uploader's files would pass `quota_bytes` (0: no quota),
        counted under the same lock."""
        def make_row(session: Session) -> Document:
            user_id = int(fields["user_id"])
            session.execute(text("UPDATE users SET id = id WHERE id = :id"), {"id": user_id})  # the lock
            if space.workspace_id is not None:
                session.execute(text("UPDATE workspaces SET id = id WHERE id = :id"), {"id": space.workspace_id})
            if quota_bytes:
                _check_quota(session, user_id, int(fields["size_bytes"]), quota_bytes)
            family = family_id
            if family is None and match_name:
                family = _family_named(session, space, str(fields["filename"]))
            row_fields = {**fields, "workspace_id": space.workspace_id}
            if family is None:
                return Document(**row_fields, family_id=fields["id"], version=1, is_head=True, is_live=False)
            rows = self._family_rows(session, space, family)
            session.execute(update(Document).where(Document.family_id == family).values(is_head=False))
            session.flush()
            return Document(**row_fields, family_id=family, version=max(row.version for row in rows) + 1,
                            is_head=True, is_live=False)
        return self._insert(space, make_row)

    def find_by_hash(self, space: Space, sha256: str) -> DocumentView | None:
        with self._db.session() as session:
            row = session.scalar(select(Document).where(in_space(space), Document.sha256 == sha256))
            return DocumentView.of(row) if row else None

    def find_by_filename(self, space: Space, filename: str) -> DocumentView | None:
        """The space's newest document whose head version has this file name."""
        with self._db.session() as session:
            family_id = _family_named(session, space, filename)
        return self.get(space, family_id) if family_id else None

    def space_of(self, family_id: str) -> Space | None:
        """The space a document lives in; None for an unknown id (callers check access next)."""
        with self._db.session() as session:
            row = session.execute(select(Document.user_id, Document.workspace_id)
                                  .where(Document.family_id == family_id).limit(1)).first()
        if row is None:
            return None
        return Space.of(row.user_id, row.workspace_id)

    def get(self, space: Space, family_id: str) -> DocumentView:
        """The space's document (its head version, with the family's counts); one of another
        space is DocumentNotFound, exactly like a missing one."""
        with self._db.session() as session:
            return _head_view(self._family_rows(session, space, family_id))

    def of_space(self, space: Space) -> list[DocumentView]:
        """The space's documents (head versions), newest upload first."""
        with self._db.session() as session:
            rows = session.scalars(select(Document).where(in_space(space))).all()
        families: dict[str, list[Document]] = {}
        for row in rows:
            families.setdefault(row.family_id, []).append(row)
        heads = [_head_view(family) for family in families.values()]
        return sorted(heads, key=lambda view: (view.created_at, view.id), reverse=True)

    def versions(self, space: Space, family_id: str) -> list[DocumentView]:
        """Every version of the space's document, newest first."""
        with self._db.session() as session:
            rows = self._family_rows(session, space, family_id)
            return [DocumentView.of(row) for row in sorted(rows, key=lambda row: -row.version)]

    def version(self, space: Space, family_id: str, number: int, removable: bool = False) -> DocumentView:
        """One version of the space's document; with `removable`, LastVersion for its only one."""
        with self._db.session() as session:
            rows = self._family_rows(session, space, family_id)
            return DocumentView.of(_removable(rows, number) if removable else _numbered(rows, number))

    def live_versions(self, space: Space, version_ids: set[str]) -> dict[str, LiveVersion]:
        """Of these version ids in the space, the live ones (the only ones answers may cite)."""
        with self._db.session() as session:
            rows = session.execute(select(Document.id, Document.family_id, Document.filename, Document.version,
                                          Document.workspace_id)
                                   .where(in_space(space), Document.id.in_(version_ids), Document.is_live))
            return {row.id: LiveVersion(row.family_id, row.filename, row.version, row.workspace_id) for row in rows}

    def live_ids(self, family_ids: list[str]) -> dict[str, tuple[Space, str | None]]:
        """family id -> (its space, its live version's id or None) for the known ones of these ids."""
        with self._db.session() as session:
            rows = session.execute(select(Document.family_id, Document.id, Document.is_live, Document.user_id,
                                          Document.workspace_id).where(Document.family_id.in_(family_ids))).all()
        found: dict[str, tuple[Space, str | None]] = {}
        for row in rows:
            space = Space.of(row.user_id, row.workspace_id)
            live = row.id if row.is_live else found.get(row.family_id, (space, None))[1]
            found[row.family_id] = (space, live)
        return found

    def remove_space(self, space: Space) -> int:
        """Delete every document row of the space; how many versions there were."""
        with self._db.session() as session:
            return affected_rows(session.execute(delete(Document).where(in_space(space))))

    def hand_over(self, user_id: int, new_uploaders: dict[str, int]) -> int:
        """Before an account goes: its uploads to workspaces pass to another member
        (`new_uploaders`: workspace id -> user id), so the team keeps them; how many moved."""
        moved = 0
        with self._db.session() as session:
            for workspace_id, new_user_id in new_uploaders.items():
                moved += affected_rows(session.execute(update(Document).where(
                    Document.user_id == user_id, Document.workspace_id == workspace_id).values(user_id=new_user_id)))
        return moved

    def workspaces_uploaded_to(self, user_id: int) -> list[str]:
        with self._db.session() as session:
            return [w for w in session.scalars(select(Document.workspace_id).distinct().where(
                Document.user_id == user_id, Document.workspace_id.is_not(None))) if w]

    def restore(self, space: Space, family_id: str, number: int) -> VersionChange:
        """Make a ready version the head and the live one; the previous live version's chunks are
        to go to the archive (the caller brings the restored version's chunks in beforehand)."""
        with self._db.session() as session:
            rows = self._family_rows(session, space, family_id)
            target = _numbered(rows, number)
            if target.status != STATUS_READY:
                raise VersionNotReady(f"Version {number} is {target.status}; only a ready version can be restored")
            _set_flag(session, family_id, "is_head", target.id)
            previous = _set_flag(session, family_id, "is_live", target.id)
            return VersionChange(to_archive=[previous] if previous else [])

    def remove(self, space: Space, family_id: str) -> list[DocumentView]:
        """Delete the document with all its versions; the versions removed."""
        with self._db.session() as session:
            rows = self._family_rows(session, space, family_id)
            removed = [DocumentView.of(row) for row in rows]
            session.execute(delete(Document).where(Document.family_id == family_id, in_space(space)))
            return removed

    def remove_version(self, space: Space, family_id: str, number: int) -> tuple[DocumentView, VersionChange]:
        """Delete one version. Without the head, the live version (else the newest) becomes the head;
        without the live version, the head if ready, else the newest ready version, goes live."""
        with self._db.session() as session:
            rows = self._family_rows(session, space, family_id)
            target = _removable(rows, number)
            removed = DocumentView.of(target)
            session.delete(target)
            session.flush()
            remaining = sorted((row for row in rows if row is not target), key=lambda row: -row.version)
            head = next((row for row in remaining if row.is_head), None)
            if head is None:  # back to the version that answers, else the newest
                head = next((row for row in remaining if row.is_live), remaining[0])
                _set_flag(session, family_id, "is_head", head.id)
            if removed.is_live or not any(row.is_live for row in remaining):
                ready = [row for row in remaining if row.status == STATUS_READY]
                live = head if head.status == STATUS_READY else (ready[0] if ready else None)
                if live is not None:
                    _set_flag(session, family_id, "is_live", live.id)
                    return removed, VersionChange(to_live=[live.id])
            return removed, VersionChange()

    def _insert(self, space: Space, make_row: Callable[[Session], Document]) -> DocumentView:
        sha256: str | None = None
        for attempt in range(INSERT_ATTEMPTS):
            try:
                with self._db.session() as session:
                    row = make_row(session)
                    sha256 = row.sha256
                    session.add(row)
                    session.flush()
                    return DocumentView.of(row)
            except IntegrityError:
                existing = self.find_by_hash(space, sha256) if sha256 else None
                if existing is not None:
                    raise DuplicateDocument(existing) from None
                if attempt + 1 == INSERT_ATTEMPTS:  # a version number taken by a simultaneous upload
                    raise
        raise AssertionError("unreachable")

    @staticmethod
    def _family_rows(session: Session, space: Space, family_id: str) -> list[Document]:
        rows = session.scalars(select(Document).where(Document.family_id == family_id)
                               .order_by(Document.version).with_for_update()).all()
        if not rows or not _belongs(rows[0], space):
            raise DocumentNotFound("No such document")
        return list(rows)

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

    def finish(self, document_id: str, chunks: int, pages: int | None, ocr_pages: int = 0,
               table_pages_skipped: int = 0) -> VersionChange | None:
        """processing -> ready. The head version goes live (the previous live version's chunks go to
        the archive); a version that stopped being the head meanwhile goes to the archive itself.
        None when the document is no longer being processed (deleted meanwhile).

        The family's rows are locked first, in version order, as an upload of a new version locks
        them: updating this row first and the live one after deadlocked against such an upload."""
        with self._db.session() as session:
            family_id = session.scalar(select(Document.family_id).where(Document.id == document_id))
            if family_id is None:
                return None
            session.scalars(select(Document.id).where(Document.family_id == family_id)
                            .order_by(Document.version).with_for_update()).all()
            done = session.execute(update(Document).where(Document.id == document_id,
                                                          Document.status == STATUS_PROCESSING)
                                   .values(status=STATUS_READY, progress=1.0, chunks=chunks, pages=pages, ocr_pages=ocr_pages,
                                           table_pages_skipped=table_pages_skipped,
                                           worker_id=None))
            if not affected_rows(done):
                return None
            row = session.get(Document, document_id)
            if row is None:
                return None
            if not row.is_head:
                return VersionChange(to_archive=[row.id])
            previous = _set_flag(session, row.family_id, "is_live", row.id)
            return VersionChange(to_archive=[previous] if previous else [])

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

    def _update(self, document_id: str, expected: dict[Any, object], **values: object) -> bool:
        conditions = [Document.id == document_id] + [column == value for column, value in expected.items()]
        with self._db.session() as session:
            result = session.execute(update(Document).where(*conditions).values(**values))
            return bool(affected_rows(result))


INSERT_ATTEMPTS = 3


def _family_named(session: Session, space: Space, filename: str) -> str | None:
    """The id of the space's newest document whose head version has this file name."""
    return session.scalar(select(Document.family_id)
                          .where(in_space(space), Document.is_head, Document.filename == filename)
                          .order_by(Document.created_at.desc()).limit(1))


def _head_view(rows: list[Document]) -> DocumentView:
    head = next((row for row in rows if row.is_head), rows[-1])
    live = next((row.version for row in rows if row.is_live), None)
    return replace(DocumentView.of(head), versions=len(rows), live_version=live)


def _numbered(rows: list[Document], number: int) -> Document:
    for row in rows:
        if row.version == number:
            return row
    raise DocumentNotFound(f"The document has no version {number}")


def _removable(rows: list[Document], number: int) -> Document:
    target = _numbered(rows, number)
    if len(rows) == 1:
        raise LastVersion("This is the document's only version; delete the document instead")
    return target


def _set_flag(session: Session, family_id: str, flag: str, version_id: str) -> str | None:
    """Move `is_head` or `is_live` to one version of the family; the version that had it before.
    Cleared first, then set: the partial unique index is checked row by row."""
    column = getattr(Document, flag)
    previous = session.scalar(select(Document.id).where(Document.family_id == family_id, column))
    session.execute(update(Document).where(Document.family_id == family_id, column)
                    .values({flag: False}).execution_options(synchronize_session="fetch"))
    session.execute(update(Document).where(Document.id == version_id)
                    .values({flag: True}).execution_options(synchronize_session="fetch"))
    return previous if previous != version_id else None
