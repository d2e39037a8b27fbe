"""Backup and restore: one consistent, timestamped archive of the database, vectors and files.

Consistency without stopping the server: the database is read from one snapshot (SQLite's online
backup API, or a REPEATABLE READ transaction on PostgreSQL), as JSON lines per table, which also
makes an archive portable between SQLite and PostgreSQL. Vectors and uploaded files are read
after that snapshot; a document whose chunks in the archive do not match its row (it was being
ingested, or changed, while the backup ran) is queued again at restore and re-ingested from its
file, which the archive holds. The archive is written under a temporary name and renamed when
complete, so an interrupted backup (kill -9) never leaves a torn archive under a real name.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import sqlite3
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Connection, create_engine, func, insert, select, text

from auth.models import ROLES, new_token_key
from common.database import Base, Database, utcnow
from common.errors import Conflict
from ingest.sniff import EXTENSIONS
from maintenance.archive_check import ArchiveCheck, BackupInvalid
from rag.spaces import Space
from rag.vector_store import VectorStore

FORMAT_VERSION = 1
Progress = Callable[[str], None]


class BackupService:
    def __init__(self, db: Database, vectors: VectorStore, uploads_dir: Path, data_dir: Path) -> None:
        self._db, self._vectors = db, vectors
        self._uploads_dir, self._data_dir = uploads_dir, data_dir

    def create(self, out_dir: Path, progress: Progress = lambda _step: None) -> Path:
        """Write docchat-backup-<UTC time>.tar.gz into `out_dir` and return its path."""
        out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        _remove_abandoned_partials(out_dir)
        stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
        final = out_dir / f"docchat-backup-{stamp}.tar.gz"
        partial = final.with_name(f".{final.name}.{os.getpid()}.partial")
        # The archive holds password hashes and the signing key: private from its first byte.
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(descriptor, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as archive:
                tables = self._dump_tables(archive, progress)
                spaces = [Space.personal(row["id"]) for row in tables["users"]]
                spaces += [Space.workspace(row["id"]) for row in tables["workspaces"]]
                chunks = self._dump_vectors(archive, spaces, progress)
                files = self._dump_files(archive, tables["documents"], progress)
                secret = self._data_dir / "jwt_secret"
                if secret.exists():
                    archive.add(secret, "jwt_secret")
                _add_bytes(archive, "manifest.json", json.dumps({
                    "format": FORMAT_VERSION, "created_at": stamp, "tables": {k: len(v) for k, v in tables.items()},
                    "chunks": chunks, "files": files}, indent=2).encode())
            partial.rename(final)
        finally:
            partial.unlink(missing_ok=True)
        return final

    def restore(self, archive_path: Path, progress: Progress = lambda _step: None) -> dict[str, Any]:
        """Load an archive into this (empty) install; returns counts, including documents re-queued,
        and whether the archive's signing key was installed. Everything in the archive is checked
        first (maintenance/archive_check.py): a bad row, file or vector refuses it whole
        (BackupInvalid), before anything is written."""
        self._require_empty()
        with tempfile.TemporaryDirectory() as scratch:
            root = _extracted(archive_path, Path(scratch))
            manifest = _manifest(root)
            progress("checking the archive")
            check = ArchiveCheck(root, set(EXTENSIONS.values()), ROLES)
            rows = check.tables(_upgraded)
            files = check.files()
            vectors = [(archived, check.vectors(folder))
                       for archived, folder in ((False, root / "vectors"), (True, root / "vectors" / "archive"))]
            secret = check.secret()
            self._load_tables(rows, progress)
            self._load_files(files, progress)
            self._load_vectors(vectors, progress)
            requeued = self._requeue_mismatched()
            replaced = secret is not None and self._install_secret(secret)
        return {**manifest["tables"], "chunks": manifest["chunks"], "requeued": requeued,
                "signing_key_replaced": replaced}

    def _install_secret(self, secret: str) -> bool:
        """Write the archive's signing key as this install's (0600); whether it differs from the
        one this install had (then tokens this install issued before stop working)."""
        path = self._data_dir / "jwt_secret"
        before = path.read_text().strip() if path.exists() else None
        draft = path.with_name(f".{path.name}.restore")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secret)
        os.replace(draft, path)
        return before != secret

    # --- writing ------------------------------------------------------------------------------

    def _dump_tables(self, archive: tarfile.TarFile, progress: Progress) -> dict[str, list[dict[str, Any]]]:
        tables: dict[str, list[dict[str, Any]]] = {}
        with self._snapshot() as connection:
            for table in Base.metadata.sorted_tables:
                progress(f"table {table.name}")
                rows = [dict(row) for row in connection.execute(select(table)).mappings()]
                tables[table.name] = rows
                lines = "".join(json.dumps(row, default=_json_value) + "\n" for row in rows)
                _add_bytes(archive, f"database/{table.name}.jsonl", lines.encode())
        return tables

    @contextmanager
    def _snapshot(self) -> Iterator[Connection]:
        """A connection that sees the database as of one instant."""
        if self._db.engine.dialect.name != "sqlite":
            with self._db.engine.connect().execution_options(isolation_level="REPEATABLE READ") as connection:
                with connection.begin():
                    yield connection
            return
        with tempfile.TemporaryDirectory() as scratch:
            copy = Path(scratch) / "snapshot.db"
            source = sqlite3.connect(self._db.engine.url.database or "")
            target = sqlite3.connect(copy)
            try:
                source.backup(target)  # SQLite's online backup: a consistent copy while others write
            finally:
                target.close()
                source.close()
            engine = create_engine(f"sqlite:///{copy}")
            try:
                with engine.connect() as connection:
                    yield connection
            finally:
                engine.dispose()

    def _dump_vectors(self, archive: tarfile.TarFile, spaces: list[Space], progress: Progress) -> int:
        """Each space's live collection as vectors/<space key>.npy + .json (u<user id> for a
        personal space, w<workspace id> for a workspace), the archive of older versions the same
        way under vectors/archive/."""
        total = 0
        for space in spaces:
            progress(f"vectors of {_described(space)}")
            for archived, folder in ((False, "vectors"), (True, "vectors/archive")):
                data = self._vectors.export_space(space, archived=archived)
                if data is None:
                    continue
                buffer = io.BytesIO()
                np.save(buffer, data["embeddings"], allow_pickle=False)
                _add_bytes(archive, f"{folder}/{space.key}.npy", buffer.getvalue())
                rest = {key: data[key] for key in ("ids", "documents", "metadatas")}
                _add_bytes(archive, f"{folder}/{space.key}.json", json.dumps(rest).encode())
                total += len(data["ids"])
        return total

    def _dump_files(self, archive: tarfile.TarFile, documents: list[dict[str, Any]], progress: Progress) -> int:
        progress("uploaded files")
        count = 0
        for document in documents:
            folder = Space.of(document["user_id"], document.get("workspace_id")).folder
            path = self._uploads_dir / folder / document["storage_name"]
            if path.exists():
                archive.add(path, f"uploads/{folder}/{document['storage_name']}")
                count += 1
        return count

    # --- reading ------------------------------------------------------------------------------

    def _require_empty(self) -> None:
        with self._db.session() as session:
            for table in Base.metadata.sorted_tables:
                if session.scalar(select(func.count()).select_from(table)):
                    raise Conflict(f"Restore needs an empty install; the table {table.name} has rows")

    def _load_tables(self, rows: dict[str, list[dict[str, Any]]], progress: Progress) -> None:
        with self._db.engine.begin() as connection:
            for table in Base.metadata.sorted_tables:
                progress(f"table {table.name}")
                if rows.get(table.name):
                    connection.execute(insert(table), rows[table.name])
            if connection.dialect.name == "postgresql":
                _reset_sequences(connection)

    def _load_files(self, files: list[tuple[Path, Path]], progress: Progress) -> None:
        progress("uploaded files")
        for source, relative in files:
            target = self._uploads_dir / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)

    def _load_vectors(self, vectors: list[tuple[bool, list[tuple[Space, dict[str, Any]]]]], progress: Progress) -> None:
        for archived, spaces in vectors:
            for space, data in spaces:
                progress(f"vectors of {_described(space)}")
                self._vectors.import_space(space, data, archived=archived)

    def _requeue_mismatched(self) -> int:
        """Documents whose chunks did not make it into the archive whole are ingested again."""
        from rag.models import STATUS_QUEUED, STATUS_READY, Document

        requeued = 0
        with self._db.session() as session:
            for document in session.scalars(select(Document)).all():
                ready = document.status == STATUS_READY
                space = Space.of(document.user_id, document.workspace_id)
                if ready and self._vectors.count(space, document.id) == document.chunks:
                    continue
                if document.status in (STATUS_READY, "processing", STATUS_QUEUED):
                    self._vectors.delete_document(space, document.id)
                    document.status, document.progress, document.worker_id = STATUS_QUEUED, 0.0, None
                    requeued += 1
        return requeued


def _described(space: Space) -> str:
    return f"workspace {space.workspace_id}" if space.workspace_id else f"user {space.owner_id}"


def _remove_abandoned_partials(out_dir: Path) -> None:
    """Partial archives of backups that died (kill -9) are removed by the next backup."""
    for partial in out_dir.glob(".docchat-backup-*.partial"):
        pid = partial.name.rsplit(".", 2)[-2]
        if pid.isdigit() and not _alive(int(pid)):
            partial.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime = len(data), int(datetime.now().timestamp())
    archive.addfile(info, io.BytesIO(data))


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__} in a backup")


def _upgraded(table_name: str, row: dict[str, Any]) -> dict[str, Any]:
    """Rows of older archives in today's columns: documents from before versions become their own
    version 1; users from before token keys get one."""
    if table_name == "documents" and "family_id" not in row:
        row |= {"family_id": row.get("id"), "version": 1, "is_head": True, "is_live": row.get("status") == "ready"}
    if table_name == "users" and "token_key" not in row:
        row["token_key"] = new_token_key()
    return row


def _extracted(archive_path: Path, scratch: Path) -> Path:
    """The archive unpacked with tarfile's "data" filter (no links out, no absolute or parent
    paths, no devices); anything it refuses is a clear BackupInvalid, not a traceback."""
    try:
        with tarfile.open(archive_path, "r:gz") as archive:
            archive.extractall(scratch, filter="data")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise BackupInvalid(f"{archive_path.name} is not a readable backup archive: {exc}") from exc
    return scratch


def _manifest(root: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise BackupInvalid("The archive has no readable manifest.json") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_VERSION:
        raise BackupInvalid(f"Unsupported backup format {manifest.get('format') if isinstance(manifest, dict) else None!r}")
    if not isinstance(manifest.get("tables"), dict) or not isinstance(manifest.get("chunks"), int):
        raise BackupInvalid("The archive's manifest.json lacks its counts")
    return manifest


def _reset_sequences(connection: Connection) -> None:
    """After explicit ids, PostgreSQL's sequences must continue past them."""
    for table in Base.metadata.sorted_tables:
        column = table.columns.get("id")
        if column is not None and column.autoincrement and str(column.type) == "INTEGER":
            connection.execute(text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                                    f"COALESCE((SELECT MAX(id) FROM {table.name}), 0) + 1, false)"))
