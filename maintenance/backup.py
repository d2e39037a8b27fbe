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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Connection, DateTime, create_engine, func, insert, select, text

from common.database import Base, Database, utcnow
from common.errors import Conflict
from rag.vector_store import VectorStore

FORMAT_VERSION = 1
Progress = Callable[[str], None]


class BackupService:
    def __init__(self, db: Database, vectors: VectorStore, uploads_dir: Path, data_dir: Path) -> None:
        self._db, self._vectors = db, vectors
        self._uploads_dir, self._data_dir = uploads_dir, data_dir

    def create(self, out_dir: Path, progress: Progress = lambda _step: None) -> Path:
        """Write docchat-backup-<UTC time>.tar.gz into `out_dir` and return its path."""
        out_dir.mkdir(parents=True, exist_ok=True)
        _remove_abandoned_partials(out_dir)
        stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
        final = out_dir / f"docchat-backup-{stamp}.tar.gz"
        partial = final.with_name(f".{final.name}.{os.getpid()}.partial")
        try:
            with tarfile.open(partial, "w:gz") as archive:
                tables = self._dump_tables(archive, progress)
                users = [row["id"] for row in tables["users"]]
                chunks = self._dump_vectors(archive, users, progress)
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

    def restore(self, archive_path: Path, progress: Progress = lambda _step: None) -> dict[str, int]:
        """Load an archive into this (empty) install; returns counts, including documents re-queued."""
        self._require_empty()
        with tarfile.open(archive_path, "r:gz") as archive, tempfile.TemporaryDirectory() as scratch:
            archive.extractall(scratch, filter="data")
            root = Path(scratch)
            manifest = json.loads((root / "manifest.json").read_text())
            if manifest.get("format") != FORMAT_VERSION:
                raise Conflict(f"Unsupported backup format {manifest.get('format')!r}")
            self._load_tables(root / "database", progress)
            self._load_files(root / "uploads", progress)
            self._load_vectors(root / "vectors", progress)
            requeued = self._requeue_mismatched()
            if (root / "jwt_secret").exists():
                shutil.copyfile(root / "jwt_secret", self._data_dir / "jwt_secret")
        return {**manifest["tables"], "chunks": manifest["chunks"], "requeued": requeued}

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

    def _dump_vectors(self, archive: tarfile.TarFile, users: list[int], progress: Progress) -> int:
        """Each user's live collection as vectors/u<id>.npy + .json, the archive of older
        versions the same way under vectors/archive/."""
        total = 0
        for user_id in users:
            progress(f"vectors of user {user_id}")
            for archived, folder in ((False, "vectors"), (True, "vectors/archive")):
                data = self._vectors.export_user(user_id, archived=archived)
                if data is None:
                    continue
                buffer = io.BytesIO()
                np.save(buffer, data["embeddings"], allow_pickle=False)
                _add_bytes(archive, f"{folder}/u{user_id}.npy", buffer.getvalue())
                rest = {key: data[key] for key in ("ids", "documents", "metadatas")}
                _add_bytes(archive, f"{folder}/u{user_id}.json", json.dumps(rest).encode())
                total += len(data["ids"])
        return total

    def _dump_files(self, archive: tarfile.TarFile, documents: list[dict[str, Any]], progress: Progress) -> int:
        progress("uploaded files")
        count = 0
        for document in documents:
            path = self._uploads_dir / str(document["user_id"]) / document["storage_name"]
            if path.exists():
                archive.add(path, f"uploads/{document['user_id']}/{document['storage_name']}")
                count += 1
        return count

    # --- reading ------------------------------------------------------------------------------

    def _require_empty(self) -> None:
        with self._db.session() as session:
            for table in Base.metadata.sorted_tables:
                if session.scalar(select(func.count()).select_from(table)):
                    raise Conflict(f"Restore needs an empty install; the table {table.name} has rows")

    def _load_tables(self, directory: Path, progress: Progress) -> None:
        with self._db.engine.begin() as connection:
            for table in Base.metadata.sorted_tables:
                progress(f"table {table.name}")
                path = directory / f"{table.name}.jsonl"
                rows = [_typed(table, _upgraded(table.name, json.loads(line)))
                        for line in path.read_text().splitlines() if line]
                if rows:
                    connection.execute(insert(table), rows)
            if connection.dialect.name == "postgresql":
                _reset_sequences(connection)

    def _load_files(self, directory: Path, progress: Progress) -> None:
        progress("uploaded files")
        if directory.exists():
            shutil.copytree(directory, self._uploads_dir, dirs_exist_ok=True)

    def _load_vectors(self, directory: Path, progress: Progress) -> None:
        for archived, folder in ((False, directory), (True, directory / "archive")):
            for embeddings_path in sorted(folder.glob("u*.npy")) if folder.exists() else []:
                user_id = int(embeddings_path.stem[1:])
                progress(f"vectors of user {user_id}")
                rest = json.loads(embeddings_path.with_suffix(".json").read_text())
                self._vectors.import_user(user_id, {**rest, "embeddings": np.load(embeddings_path, allow_pickle=False)},
                                          archived=archived)

    def _requeue_mismatched(self) -> int:
        """Documents whose chunks did not make it into the archive whole are ingested again."""
        from rag.models import STATUS_QUEUED, STATUS_READY, Document

        requeued = 0
        with self._db.session() as session:
            for document in session.scalars(select(Document)).all():
                ready = document.status == STATUS_READY
                if ready and self._vectors.count(document.user_id, document.id) == document.chunks:
                    continue
                if document.status in (STATUS_READY, "processing", STATUS_QUEUED):
                    self._vectors.delete_document(document.user_id, document.id)
                    document.status, document.progress, document.worker_id = STATUS_QUEUED, 0.0, None
                    requeued += 1
        return requeued


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
    """Rows of archives written before document versions: each document its own version 1."""
    if table_name == "documents" and "family_id" not in row:
        row |= {"family_id": row["id"], "version": 1, "is_head": True, "is_live": row["status"] == "ready"}
    return row


def _typed(table: Any, row: dict[str, Any]) -> dict[str, Any]:
    """JSON back to column types (timestamps)."""
    for column in table.columns:
        if isinstance(column.type, DateTime) or getattr(column.type, "impl", None) is not None and isinstance(
                getattr(column.type, "impl"), DateTime):
            if row.get(column.name) is not None:
                row[column.name] = datetime.fromisoformat(row[column.name])
    return row


def _reset_sequences(connection: Connection) -> None:
    """After explicit ids, PostgreSQL's sequences must continue past them."""
    for table in Base.metadata.sorted_tables:
        column = table.columns.get("id")
        if column is not None and column.autoincrement and str(column.type) == "INTEGER":
            connection.execute(text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                                    f"COALESCE((SELECT MAX(id) FROM {table.name}), 0) + 1, false)"))
