"""The auth, document, error, monitoring and session suites again, on the local PostgreSQL (TEST_POSTGRES_URL)."""
from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from common.database import normalize_url

from tests.test_auth import *  # noqa: F401,F403  (collected again here, on PostgreSQL)
from tests.test_documents import *  # noqa: F401,F403
from tests.test_errors import *  # noqa: F401,F403
from tests.test_monitoring import *  # noqa: F401,F403
from tests.test_sessions import *  # noqa: F401,F403

pytestmark = pytest.mark.postgres


def _server_url() -> str:
    url = os.environ.get("TEST_POSTGRES_URL")
    if not url:
        pytest.skip("TEST_POSTGRES_URL is not set")
    url = normalize_url(url)
    try:
        with create_engine(url).connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at {url}: {exc.orig}")
    return url


@pytest.fixture
def database_url() -> Iterator[str]:
    """A fresh database per test on the PostgreSQL server, dropped afterwards."""
    server = _server_url()
    name = f"docchat_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(server).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_the_schema_really_is_on_postgresql(app):
    db = app.extensions["docchat"].db
    assert db.engine.dialect.name == "postgresql"
    assert {"users", "api_keys", "revoked_logins", "documents", "alembic_version"} <= set(db.table_names())
