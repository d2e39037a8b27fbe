"""The auth, document, error, monitoring, session, version and workspace suites again, on the local PostgreSQL (TEST_POSTGRES_URL)."""
from __future__ import annotations

import pytest

from tests.api.test_errors import *  # noqa: F401,F403
from tests.auth.test_accounts import *  # noqa: F401,F403  (collected again here, on PostgreSQL)
from tests.auth.test_auth import *  # noqa: F401,F403
from tests.auth.test_idor import *  # noqa: F401,F403
from tests.monitoring.test_monitoring import *  # noqa: F401,F403
from tests.rag.test_documents import *  # noqa: F401,F403
from tests.rag.test_versions import *  # noqa: F401,F403
from tests.sessions.test_sessions import *  # noqa: F401,F403
from tests.workspaces.test_workspace_documents import *  # noqa: F401,F403
from tests.workspaces.test_workspaces import *  # noqa: F401,F403

pytestmark = pytest.mark.postgres


@pytest.fixture
def database_url(fresh_postgres_url: str) -> str:
    """Every suite above, on a fresh PostgreSQL database per test."""
    return fresh_postgres_url


def test_the_schema_really_is_on_postgresql(app):
    db = app.extensions["docchat"].db
    assert db.engine.dialect.name == "postgresql"
    assert {"users", "api_keys", "revoked_logins", "documents", "alembic_version"} <= set(db.table_names())


def test_a_finished_version_locks_its_family_in_the_order_an_upload_does(app, users):
    """An upload locks a family's rows in version order; finishing a version must too. It used to
    update its own row first and the live one after, and deadlocked against an upload (seen in
    the suite: 503 DATABASE_UNAVAILABLE, "deadlock detected")."""
    import threading

    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    from rag.repository import DocumentRepository
    from rag.spaces import Space

    db = app.extensions["docchat"].db
    repository = DocumentRepository(db)
    owner = users.register()
    user_id = app.extensions["docchat"].users.find(owner.username).id

    def version(number: int, family: str | None) -> str:
        fields = dict(id=f"v{number}" + "0" * 30, user_id=user_id, filename="vault.txt", type="txt",
                      sha256=str(number) * 64, size_bytes=10, storage_name=f"v{number}.txt")
        return repository.add(Space.personal(user_id), family, match_name=False, **fields).id

    live = version(1, None)
    assert repository.claim(live) and repository.finish(live, chunks=1, pages=None) is not None
    pending = version(2, live)
    assert repository.claim(pending)
    with db.engine.connect() as upload:  # an upload of version 3, holding the first row it locked
        upload.execute(text("SELECT id FROM documents WHERE id = :id FOR UPDATE"), {"id": live})
        finished: list[object] = []
        worker = threading.Thread(target=lambda: finished.append(repository.finish(pending, chunks=1, pages=None)))
        worker.start()
        worker.join(1.0)  # the worker now waits for the upload's lock
        try:
            upload.execute(text("SELECT id FROM documents WHERE id = :id FOR UPDATE NOWAIT"), {"id": pending})
        except OperationalError as exc:
            raise AssertionError("finishing a version locked it before the family's first row") from exc
        finally:
            upload.rollback()
        worker.join(30)
    assert finished and finished[0] is not None
    assert repository.get(Space.personal(user_id), live).id == pending  # the new version is the head, and live


def test_compaction_vacuums_postgresql(app, client, users):
    """On PostgreSQL the database gets VACUUM (ANALYZE) in autocommit (inside a transaction it would
    fail); the keyword index lives in PostgreSQL too."""
    admin = users.admin()
    run = client.post("/admin/maintenance/compact_storage", headers=admin.headers).get_json()
    assert run["outcome"] == "ok", run
    database = app.extensions["docchat"].db.engine.url.database
    assert f"({database} " in run["detail"] and "keywords.db" not in run["detail"]
