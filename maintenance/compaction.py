"""Storage compaction: give back the space that deleted documents, versions and sessions leave.

SQLite files (the server's database, the keyword index) keep freed pages for reuse and never
shrink by themselves: VACUUM rewrites each one, and its WAL is checkpointed and truncated, so the
bytes reclaimed are the files' size before less after. PostgreSQL gets a plain VACUUM (ANALYZE),
which marks dead rows reusable without locking tables out (the size it reports rarely drops:
PostgreSQL keeps the pages).

Chroma's own file (chroma.sqlite3) is not touched while the server runs: Chroma's compaction is
`.venv/bin/chroma vacuum --path DATA_DIR/chroma` with the server stopped, and VACUUMing it under the
live Chroma client was measured to break that client ("disk I/O error" on its next read).
"""
from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, text

log = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 30.0  # how long VACUUM waits for other connections' transactions to end


@dataclass(frozen=True)
class Compacted:
    name: str
    before_bytes: int
    after_bytes: int

    @property
    def reclaimed_bytes(self) -> int:
        return max(0, self.before_bytes - self.after_bytes)


class StorageCompactor:
    def __init__(self, database: Engine, sqlite_files: list[Path]) -> None:
        """`database`: the server's database; `sqlite_files`: other SQLite files it writes (those
        that do not exist, such as a PostgreSQL install's keyword index, are skipped)."""
        self._database = database
        self._files = sqlite_files

    def compact(self) -> list[Compacted]:
        done = [self._compact_database()]
        done += [self._compact_file(path) for path in self._files if path.exists()]
        return done

    def run(self) -> str:
        """The maintenance task: compact everything, say what was reclaimed."""
        done = self.compact()
        total = sum(item.reclaimed_bytes for item in done)
        parts = ", ".join(f"{item.name} {item.reclaimed_bytes}" for item in done)
        return f"reclaimed {total} bytes ({parts})"

    def _compact_database(self) -> Compacted:
        if self._database.dialect.name == "sqlite":
            path = Path(self._database.url.database or "")
            before = _size(path)
            with self._database.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.exec_driver_sql("VACUUM")
                connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            return Compacted(path.name, before, _size(path))
        size = text("SELECT pg_database_size(current_database())")
        with self._database.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            before = int(connection.execute(size).scalar_one())
            connection.exec_driver_sql("VACUUM (ANALYZE)")
            after = int(connection.execute(size).scalar_one())
        return Compacted(self._database.url.database or "postgresql", before, after)

    @staticmethod
    def _compact_file(path: Path) -> Compacted:
        before = _size(path)
        connection = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            connection.execute("VACUUM")
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            connection.close()
        return Compacted(path.name, before, _size(path))


def _size(path: Path) -> int:
    """A SQLite database's bytes on disk: the file and its write-ahead log."""
    wal = path.with_name(path.name + "-wal")
    return sum(part.stat().st_size for part in (path, wal) if part.exists())
