"""The keyword index beside the vectors: BM25-ranked full-text search over each space's live chunks.

Dense vectors find passages that mean the same; they rank a near miss above the passage that
holds the exact words asked for (a command name, a number, a rare term). A keyword index finds
those; the retriever fuses both rankings (rag/retriever.py).

Per space by construction, like the vectors: each space has its own table (kw_u<user id>,
kw_w<workspace id>), and a search opens only the tables of the spaces it is given. It mirrors the
space's live Chroma collection: the vector store writes both in the same calls (add, move to and
from the archive, delete, restore), so it follows ingestion, versions and deletes, and the
integrity check compares the two.

Two engines: SQLite FTS5 (the embedded default, in DATA_DIR/keywords.db: the index is derived
data, rebuilt from the vectors' texts when a backup is restored) and PostgreSQL full-text search
(tsvector with a GIN index) in the server's own database when DATABASE_URL points there, so every
web worker and host sees one index. Chroma 1.5's own sparse (BM25) index is refused by its local
and self-hosted modes ("Sparse vector indexing is not enabled in local"), so it is no candidate.
"""
from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text

from common.text import STOPWORDS
from rag.spaces import Space

MAX_QUERY_TERMS = 32


@dataclass(frozen=True)
class KeywordRow:
    chunk_id: str
    document_id: str
    chunk_index: int
    text: str


@dataclass(frozen=True)
class KeywordHit:
    chunk_id: str
    document_id: str
    score: float  # higher is better; comparable within one search


def query_terms(question: str) -> list[str]:
    """The words of a question worth searching: lower-cased, no stopwords, each once."""
    words = [word for word in re.findall(r"\w+", question.lower()) if len(word) > 1 and word not in STOPWORDS]
    return list(dict.fromkeys(words))[:MAX_QUERY_TERMS]


def coverage(question: str, text: str) -> tuple[int, float]:
    """How many of the question's search words the text holds (as words or word beginnings, so
    "polish" covers "polishes"), and their share."""
    terms = query_terms(question)
    if not terms:
        return 0, 0.0
    words = set(re.findall(r"\w+", text.lower()))
    found = sum(1 for term in terms if any(word.startswith(term[:max(4, len(term) - 2)]) for word in words))
    return found, found / len(terms)


def _table(space: Space) -> str:
    """The space's table name; keys are server-made (u<digits>, w<32 hex>), checked anyway."""
    name = f"kw_{space.key}"
    if not re.fullmatch(r"kw_(u\d+|w[0-9a-f]{32})", name):
        raise ValueError(f"not a space key: {space.key!r}")
    return name


class KeywordIndex:
    """One full-text table per space; see the module's docstring. Subclasses hold the dialect."""

    enabled = True

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._made: set[str] = set()
        self._lock = threading.Lock()

    @staticmethod
    def open(database: Engine, data_dir: Path) -> "KeywordIndex":
        """PostgreSQL full-text search in the server's own database (`database`), else SQLite
        FTS5 in DATA_DIR/keywords.db."""
        if database.dialect.name == "postgresql":
            return PostgresKeywords(database)
        data_dir.mkdir(parents=True, exist_ok=True)
        return SqliteKeywords(data_dir / "keywords.db")

    def close(self) -> None:
        """Release connections this index opened itself (not the server database's)."""

    def add(self, space: Space, rows: Iterable[KeywordRow]) -> None:
        """Insert or replace these chunks' rows (a retried ingestion writes the same ids again)."""
        batch = [{"chunk_id": row.chunk_id, "document_id": row.document_id, "chunk_index": row.chunk_index,
                  "text": row.text} for row in rows]
        if not batch:
            return
        table = self._ensure(space)
        with self._engine.begin() as connection:
            connection.execute(text(self._upsert_sql(table)), batch)

    def delete_document(self, space: Space, document_id: str) -> None:
        self._delete(space, "document_id = :document_id", {"document_id": document_id})

    def delete_chunks_from(self, space: Space, document_id: str, first_index: int) -> None:
        self._delete(space, "document_id = :document_id AND chunk_index >= :first",
                     {"document_id": document_id, "first": first_index})

    def drop_space(self, space: Space) -> None:
        table = _table(space)
        with self._lock:
            self._made.discard(table)
        with self._engine.begin() as connection:
            for statement in self._drop_sql(table):
                connection.execute(text(statement))

    def counts(self, space: Space) -> dict[str, int]:
        """How many rows each document version has in the space's index."""
        if not self._exists(space):
            return {}
        with self._engine.connect() as connection:
            found = connection.execute(text(f"SELECT document_id, count(*) FROM {self._rows(_table(space))} "
                                            "GROUP BY document_id"))
            return {str(document_id): int(count) for document_id, count in found}

    def search(self, space: Space, question: str, k: int, only: frozenset[str] | None = None) -> list[KeywordHit]:
        """The space's k best chunks for the question's words, best first (of the version ids
        `only`, when given); nothing when the question has no searchable word."""
        terms = query_terms(question)
        if not terms or (only is not None and not only) or not self._exists(space):
            return []
        params: dict[str, Any] = {"k": k}
        versions = ""
        if only is not None:
            names = [f"d{number}" for number in range(len(only))]
            params |= dict(zip(names, sorted(only), strict=True))
            versions = ", ".join(":" + name for name in names)
        with self._engine.connect() as connection:
            found = connection.execute(text(self._search_sql(_table(space), versions)),
                                       params | self._query_params(terms))
            return [KeywordHit(str(chunk_id), str(document_id), float(score)) for chunk_id, document_id, score in found]

    def _delete(self, space: Space, condition: str, params: dict[str, Any]) -> None:
        if not self._exists(space):
            return
        with self._engine.begin() as connection:
            connection.execute(text(f"DELETE FROM {self._rows(_table(space))} WHERE {condition}"), params)

    def _ensure(self, space: Space) -> str:
        table = _table(space)
        with self._lock:
            if table not in self._made:
                with self._engine.begin() as connection:
                    for statement in self._create_sql(table):
                        connection.execute(text(statement))
                self._made.add(table)
        return table

    def _exists(self, space: Space) -> bool:
        table = _table(space)
        if table in self._made:
            return True
        with self._engine.connect() as connection:
            found = connection.execute(text(self._exists_sql()), {"name": self._rows(table)}).first() is not None
        if found:
            with self._lock:
                self._made.add(table)
        return found

    # --- the dialect's SQL -------------------------------------------------------------------

    def _rows(self, table: str) -> str:
        raise NotImplementedError

    def _create_sql(self, table: str) -> list[str]:
        raise NotImplementedError

    def _drop_sql(self, table: str) -> list[str]:
        raise NotImplementedError

    def _exists_sql(self) -> str:
        raise NotImplementedError

    def _upsert_sql(self, table: str) -> str:
        """Insert or replace by chunk id (both dialects read ON CONFLICT ... DO UPDATE alike)."""
        return (f"INSERT INTO {self._rows(table)} (chunk_id, document_id, chunk_index, text) "
                "VALUES (:chunk_id, :document_id, :chunk_index, :text) ON CONFLICT (chunk_id) DO UPDATE SET "
                "document_id = excluded.document_id, chunk_index = excluded.chunk_index, text = excluded.text")

    def _search_sql(self, table: str, versions: str) -> str:
        """The search; `versions`, when not empty, the bind list of the only document ids wanted."""
        raise NotImplementedError

    def _query_params(self, terms: list[str]) -> dict[str, str]:
        raise NotImplementedError


class NoKeywords(KeywordIndex):
    """No keyword index: every search finds nothing (dense-only retrieval, as in the benchmarks'
    dense rows and for stores built without one)."""

    enabled = False

    def __init__(self) -> None:
        """Builds nothing: every method below answers without a table, so no engine is needed."""

    def add(self, space: Space, rows: Iterable[KeywordRow]) -> None:
        return None

    def delete_document(self, space: Space, document_id: str) -> None:
        return None

    def delete_chunks_from(self, space: Space, document_id: str, first_index: int) -> None:
        return None

    def drop_space(self, space: Space) -> None:
        return None

    def counts(self, space: Space) -> dict[str, int]:
        return {}

    def search(self, space: Space, question: str, k: int, only: frozenset[str] | None = None) -> list[KeywordHit]:
        return []


class SqliteKeywords(KeywordIndex):
    """FTS5 with the Porter stemmer over a plain rows table (external content, kept in step by
    triggers, as SQLite's documentation shows): upserts and deletes by document are indexed
    lookups, and bm25() ranks."""

    def __init__(self, path: Path) -> None:
        engine = create_engine(f"sqlite:///{path}", connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(connection: Any, _record: Any) -> None:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")

        super().__init__(engine)

    def close(self) -> None:
        self._engine.dispose()

    def _rows(self, table: str) -> str:
        return f"{table}_rows"

    def _create_sql(self, table: str) -> list[str]:
        rows = self._rows(table)
        return [
            f"CREATE TABLE IF NOT EXISTS {rows} (id INTEGER PRIMARY KEY, chunk_id TEXT NOT NULL UNIQUE, "
            "document_id TEXT NOT NULL, chunk_index INTEGER NOT NULL, text TEXT NOT NULL)",
            f"CREATE INDEX IF NOT EXISTS {rows}_document ON {rows} (document_id, chunk_index)",
            f"CREATE VIRTUAL TABLE IF NOT EXISTS {table} USING fts5(text, content='{rows}', content_rowid='id', "
            "tokenize='porter unicode61 remove_diacritics 2')",
            f"CREATE TRIGGER IF NOT EXISTS {rows}_ai AFTER INSERT ON {rows} BEGIN "
            f"INSERT INTO {table}(rowid, text) VALUES (new.id, new.text); END",
            f"CREATE TRIGGER IF NOT EXISTS {rows}_ad AFTER DELETE ON {rows} BEGIN "
            f"INSERT INTO {table}({table}, rowid, text) VALUES ('delete', old.id, old.text); END",
            f"CREATE TRIGGER IF NOT EXISTS {rows}_au AFTER UPDATE ON {rows} BEGIN "
            f"INSERT INTO {table}({table}, rowid, text) VALUES ('delete', old.id, old.text); "
            f"INSERT INTO {table}(rowid, text) VALUES (new.id, new.text); END",
        ]

    def _drop_sql(self, table: str) -> list[str]:
        return [f"DROP TABLE IF EXISTS {table}", f"DROP TABLE IF EXISTS {self._rows(table)}"]

    def _exists_sql(self) -> str:
        return "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :name"

    def _search_sql(self, table: str, versions: str) -> str:
        restrict = f" AND r.document_id IN ({versions})" if versions else ""
        return (f"SELECT r.chunk_id, r.document_id, -bm25({table}) AS score FROM {table} "
                f"JOIN {self._rows(table)} r ON r.id = {table}.rowid WHERE {table} MATCH :query{restrict} "
                f"ORDER BY bm25({table}) LIMIT :k")

    def _query_params(self, terms: list[str]) -> dict[str, str]:
        return {"query": " OR ".join(f'"{term}"' for term in terms)}


class PostgresKeywords(KeywordIndex):
    """A table per space with a generated tsvector (English stemming) under a GIN index, ranked
    by ts_rank_cd (PostgreSQL has no BM25; cover density weighs how close the words stand)."""

    def _rows(self, table: str) -> str:
        return table

    def _create_sql(self, table: str) -> list[str]:
        return [
            f"CREATE TABLE IF NOT EXISTS {table} (chunk_id TEXT PRIMARY KEY, document_id TEXT NOT NULL, "
            "chunk_index INTEGER NOT NULL, text TEXT NOT NULL, "
            "tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED)",
            f"CREATE INDEX IF NOT EXISTS {table}_tsv ON {table} USING gin (tsv)",
            f"CREATE INDEX IF NOT EXISTS {table}_document ON {table} (document_id, chunk_index)",
        ]

    def _drop_sql(self, table: str) -> list[str]:
        return [f"DROP TABLE IF EXISTS {table}"]

    def _exists_sql(self) -> str:
        return "SELECT 1 FROM pg_tables WHERE schemaname = current_schema() AND tablename = :name"

    def _search_sql(self, table: str, versions: str) -> str:
        restrict = f" AND document_id IN ({versions})" if versions else ""
        return (f"SELECT chunk_id, document_id, ts_rank_cd(tsv, query) AS score "
                f"FROM {table}, to_tsquery('english', :query) query WHERE tsv @@ query{restrict} "
                "ORDER BY score DESC LIMIT :k")

    def _query_params(self, terms: list[str]) -> dict[str, str]:
        return {"query": " | ".join(terms)}
