"""The auth, document, error, monitoring, session and version suites again, on the local PostgreSQL (TEST_POSTGRES_URL)."""
from __future__ import annotations

import pytest

from tests.test_auth import *  # noqa: F401,F403  (collected again here, on PostgreSQL)
from tests.test_documents import *  # noqa: F401,F403
from tests.test_errors import *  # noqa: F401,F403
from tests.test_monitoring import *  # noqa: F401,F403
from tests.test_sessions import *  # noqa: F401,F403
from tests.test_versions import *  # noqa: F401,F403

pytestmark = pytest.mark.postgres


@pytest.fixture
def database_url(fresh_postgres_url: str) -> str:
    """Every suite above, on a fresh PostgreSQL database per test."""
    return fresh_postgres_url


def test_the_schema_really_is_on_postgresql(app):
    db = app.extensions["docchat"].db
    assert db.engine.dialect.name == "postgresql"
    assert {"users", "api_keys", "revoked_logins", "documents", "alembic_version"} <= set(db.table_names())
