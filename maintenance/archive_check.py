"""What a restore accepts from an archive: every row, file and vector checked before anything is written.

An archive is data from outside: whoever hands one to `flask backup restore` must not be able to
make the server read or delete a file outside its uploads folder, give a row a type the schema
does not have, or slip in a file or vector that no document owns. Each row is checked against its
table's columns (names, types, lengths, nullability) and the rules of the rows this server makes
itself (server-made file names, known roles and types, references between the archive's rows).
The first problem refuses the whole archive, naming the file and line.
"""
from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, Integer, String, Table, Text

from common.database import Base
from common.errors import DomainError
from rag.spaces import Space
from workspaces.models import ROLES as WORKSPACE_ROLES

HEX_ID = re.compile(r"^[0-9a-f]{32}$")
USERNAME = re.compile(r"^[a-z0-9_.-]{3,64}$")
STORAGE_NAME = re.compile(r"^[0-9a-f]{32}\.[a-z0-9]{1,8}$")
SPACE_DIR = re.compile(r"^([1-9][0-9]{0,18}|w[0-9a-f]{32})$")  # a user's own folder, or a workspace's
VECTOR_FILE = re.compile(r"^(u[1-9][0-9]{0,18}|w[0-9a-f]{32})\.(npy|json)$")
SECRET = re.compile(r"^[\x21-\x7e]{32,512}$")


class BackupInvalid(DomainError):
    """The archive is not a backup this server can restore safely; nothing was written."""


def rows_of(directory: Path, table: Table) -> list[dict[str, Any]]:
    """The table's rows as JSON objects, one a line; BackupInvalid on anything else."""
    path = directory / f"{table.name}.jsonl"
    if not path.is_file():
        raise BackupInvalid(f"The archive has no database/{table.name}.jsonl")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (ValueError, RecursionError) as exc:
            raise BackupInvalid(f"database/{table.name}.jsonl line {number} is not JSON") from exc
        if not isinstance(row, dict):
            raise BackupInvalid(f"database/{table.name}.jsonl line {number} is not an object")
        rows.append(row)
    return rows


def check_row(table: Table, row: dict[str, Any], where: str) -> dict[str, Any]:
    """The row with its values in the column types (timestamps parsed); BackupInvalid otherwise."""
    unknown = set(row) - set(table.columns.keys())
    if unknown:
        raise BackupInvalid(f"{where}: {sorted(unknown)[0]!r} is not a column of {table.name}")
    typed: dict[str, Any] = {}
    for column in table.columns:
        if column.name not in row or row[column.name] is None:
            if not column.nullable and column.default is None and column.server_default is None:
                raise BackupInvalid(f"{where}: {column.name} is missing")
            if column.name in row:
                typed[column.name] = None
            continue
        typed[column.name] = _typed_value(column.type, row[column.name], f"{where}: {column.name}")
    return typed


def _typed_value(kind: Any, value: Any, where: str) -> Any:
    kind = getattr(kind, "impl", kind)  # UTCDateTime is a DateTime underneath
    if isinstance(kind, (Integer, BigInteger)):
        if isinstance(value, bool) or not isinstance(value, int) or abs(value) >= 2 ** 63:
            raise BackupInvalid(f"{where} must be a whole number")
        return value
    if isinstance(kind, Boolean):
        if not isinstance(value, bool):
            raise BackupInvalid(f"{where} must be true or false")
        return value
    if isinstance(kind, Float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BackupInvalid(f"{where} must be a number")
        return float(value)
    if isinstance(kind, DateTime):
        try:
            moment = datetime.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            moment = None
        if moment is None or moment.tzinfo is None:
            raise BackupInvalid(f"{where} must be an ISO 8601 time with its offset")
        return moment
    if isinstance(kind, (String, Text)):
        if not isinstance(value, str) or (kind.length is not None and len(value) > kind.length):
            raise BackupInvalid(f"{where} must be text of at most {kind.length or 'any'} characters")
        return value
    if isinstance(kind, JSON):
        return value
    raise BackupInvalid(f"{where} has a type a restore does not know")


class ArchiveCheck:
    """Reads and checks an extracted archive at `root`; `rows` are ready to insert afterwards."""

    def __init__(self, root: Path, supported_types: set[str], roles: tuple[str, ...]) -> None:
        self._root, self._types, self._roles = root, supported_types, roles
        self.rows: dict[str, list[dict[str, Any]]] = {}

    def tables(self, upgrade: Any) -> dict[str, list[dict[str, Any]]]:
        """Every table's rows, checked column by column and against the server's own rules.
        `upgrade(table_name, row)` first brings rows of older archives to today's columns."""
        for table in Base.metadata.sorted_tables:
            self.rows[table.name] = [
                check_row(table, upgrade(table.name, row), f"database/{table.name}.jsonl row {number}")
                for number, row in enumerate(rows_of(self._root / "database", table), start=1)]
        self._check_users()
        self._check_documents()
        self._check_owned("api_keys", "user_id")
        self._check_owned("chat_sessions", "user_id")
        self._check_owned("workspace_members", "user_id")
        self._check_members()
        sessions = {row["id"] for row in self.rows.get("chat_sessions", [])}
        for number, row in enumerate(self.rows.get("chat_messages", []), start=1):
            if row["session_id"] not in sessions:
                raise BackupInvalid(f"database/chat_messages.jsonl row {number}: no such chat session")
        return self.rows

    def _check_users(self) -> None:
        for number, row in enumerate(self.rows["users"], start=1):
            where = f"database/users.jsonl row {number}"
            if not USERNAME.match(row["username"]):
                raise BackupInvalid(f"{where}: the username is not one this server would have accepted")
            if row["role"] not in self._roles:
                raise BackupInvalid(f"{where}: unknown role {row['role']!r}")
            if row["id"] is None or row["id"] < 1:
                raise BackupInvalid(f"{where}: user ids are positive")

    def _workspaces(self) -> set[str]:
        return {row["id"] for row in self.rows.get("workspaces", [])}

    def _check_members(self) -> None:
        workspaces = self._workspaces()
        for number, row in enumerate(self.rows.get("workspace_members", []), start=1):
            if row["workspace_id"] not in workspaces:
                raise BackupInvalid(f"database/workspace_members.jsonl row {number}: no such workspace")
            if row["role"] not in WORKSPACE_ROLES:
                raise BackupInvalid(f"database/workspace_members.jsonl row {number}: unknown role {row['role']!r}")
        for number, row in enumerate(self.rows.get("workspaces", []), start=1):
            if not HEX_ID.match(row["id"]):
                raise BackupInvalid(f"database/workspaces.jsonl row {number}: workspace ids are 32 hexadecimal characters")

    def _check_documents(self) -> None:
        users = {row["id"] for row in self.rows["users"]}
        workspaces = self._workspaces()
        for number, row in enumerate(self.rows["documents"], start=1):
            where = f"database/documents.jsonl row {number}"
            if row["user_id"] not in users:
                raise BackupInvalid(f"{where}: no such user")
            if row.get("workspace_id") is not None and row["workspace_id"] not in workspaces:
                raise BackupInvalid(f"{where}: no such workspace")
            if not HEX_ID.match(row["id"]) or not HEX_ID.match(row["family_id"]):
                raise BackupInvalid(f"{where}: document ids are 32 hexadecimal characters")
            if row["type"] not in self._types:
                raise BackupInvalid(f"{where}: unknown document type {row['type']!r}")
            if row["storage_name"] != f"{row['id']}.{row['type']}" or not STORAGE_NAME.match(row["storage_name"]):
                raise BackupInvalid(f"{where}: storage_name must be the server-made name {row['id']}.{row['type']}")

    def _check_owned(self, table: str, column: str) -> None:
        users = {row["id"] for row in self.rows["users"]}
        for number, row in enumerate(self.rows.get(table, []), start=1):
            if row[column] not in users:
                raise BackupInvalid(f"database/{table}.jsonl row {number}: no such user")

    def files(self) -> list[tuple[Path, Path]]:
        """(file in the archive, its place under the uploads folder) for each document's file;
        a file that no document row names refuses the archive."""
        expected = {(_space(row).folder, row["storage_name"]) for row in self.rows["documents"]}
        found: list[tuple[Path, Path]] = []
        uploads = self._root / "uploads"
        for path in sorted(uploads.rglob("*")) if uploads.is_dir() else []:
            relative = path.relative_to(uploads)
            if path.is_symlink() or not (path.is_file() or path.is_dir()):
                raise BackupInvalid(f"uploads/{relative} is not a plain file")
            if path.is_dir():
                if len(relative.parts) != 1 or not SPACE_DIR.match(relative.name):
                    raise BackupInvalid(f"uploads/{relative} is not a user's or a workspace's folder")
                continue
            if len(relative.parts) != 2 or tuple(relative.parts) not in expected:
                raise BackupInvalid(f"uploads/{relative} belongs to no document in the archive")
            found.append((path, relative))
        return found

    def vectors(self, folder: Path) -> list[tuple[Space, dict[str, Any]]]:
        """Each space's exported chunks in `folder`, checked: a known user or workspace, that
        space's own documents, equal lengths, finite vectors of one width."""
        if not folder.is_dir():
            return []
        documents: dict[str, set[str]] = {}
        for row in self.rows["documents"]:
            documents.setdefault(_space(row).key, set()).add(row["id"])
        spaces = {Space.personal(row["id"]).key for row in self.rows["users"]}
        spaces |= {Space.workspace(workspace_id).key for workspace_id in self._workspaces()}
        loaded = []
        for path in sorted(folder.iterdir()):
            if path.is_dir() and path.name == "archive" and folder.name != "archive":
                continue
            match = VECTOR_FILE.match(path.name)
            if match is None or not path.is_file() or path.is_symlink():
                raise BackupInvalid(f"{path.relative_to(self._root)} is not a vector file this server writes")
            if match.group(2) == "json":
                continue
            key = match.group(1)
            if key not in spaces:
                raise BackupInvalid(f"{path.relative_to(self._root)}: no such user or workspace")
            loaded.append((Space.from_key(key), self._chunks(path, documents.get(key, set()))))
        return loaded

    def _chunks(self, path: Path, documents: set[str]) -> dict[str, Any]:
        where = str(path.relative_to(self._root))
        try:
            embeddings = np.load(path, allow_pickle=False)
            rest = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as exc:
            raise BackupInvalid(f"{where} (or its .json) cannot be read: {exc}") from exc
        if not isinstance(rest, dict) or not all(isinstance(rest.get(key), list)
                                                 for key in ("ids", "documents", "metadatas")):
            raise BackupInvalid(f"{where}: its .json needs the lists ids, documents and metadatas")
        count = len(rest["ids"])
        if embeddings.ndim != 2 or embeddings.shape[0] != count or not np.issubdtype(embeddings.dtype, np.floating) \
                or not np.isfinite(embeddings).all() or len(rest["documents"]) != count or len(rest["metadatas"]) != count:
            raise BackupInvalid(f"{where}: ids, texts, metadata and vectors do not match")
        for chunk_id, text, meta in zip(rest["ids"], rest["documents"], rest["metadatas"], strict=True):
            if not isinstance(chunk_id, str) or not isinstance(text, str) or not isinstance(meta, dict):
                raise BackupInvalid(f"{where}: a chunk's id, text or metadata has the wrong type")
            if meta.get("document_id") not in documents or isinstance(meta.get("chunk_index"), bool) \
                    or not isinstance(meta.get("chunk_index"), int):
                raise BackupInvalid(f"{where}: chunk {chunk_id[:80]!r} belongs to no document of this space")
        return {**rest, "embeddings": embeddings.astype(np.float32)}

    def secret(self) -> str | None:
        """The archive's JWT signing key, if it has one of a sane form."""
        path = self._root / "jwt_secret"
        if not path.exists():
            return None
        value = path.read_text(encoding="utf-8", errors="replace").strip() if path.is_file() else ""
        if not SECRET.match(value):
            raise BackupInvalid("The archive's jwt_secret is not a signing key this server writes")
        return value


def _space(row: dict[str, Any]) -> Space:
    """The space of a documents row."""
    return Space.of(row["user_id"], row.get("workspace_id"))
