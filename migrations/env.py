"""Alembic environment: runs migrations on the connection Database.migrate() hands over."""
from __future__ import annotations

import sys
from pathlib import Path

from alembic import context

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import auth.models  # noqa: E402,F401  (registers the tables on Base.metadata)
import rag.models  # noqa: E402,F401
import sessions.models  # noqa: E402,F401
from common.database import Base  # noqa: E402

# Several workers may start at once; on PostgreSQL one migrates while the others wait.
MIGRATION_LOCK_ID = 74_212_001


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through Database.migrate() or `flask db-upgrade`")
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID})")
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
