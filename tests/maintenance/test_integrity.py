"""Start-up integrity: mismatches between the database and the vector store show in /health, and
`flask integrity repair` fixes them (re-ingesting from the file, removing orphans)."""
from __future__ import annotations

import numpy as np

from rag.spaces import Space
from rag.types import Chunk
from tests.conftest import Users, search, upload, wait_for


def test_problems_show_in_health_and_repair_fixes_them(make_app, samples):
    from app import start_background_work

    app = make_app()
    start_background_work(app)
    client = app.test_client()
    alice = Users(app, client).register()
    document = upload(client, alice, samples["md"]).get_json()["document"]
    svc = app.extensions["docchat"]
    assert svc.integrity.check().problems() == []

    svc.vectors.delete_document(Space.personal(alice.id), document["id"])  # chunks lost behind the database's back
    svc.vectors.add(Space.personal(alice.id), "gone-document", [Chunk(text="left behind", index=0, tokens=2)],
                    np.ones((1, 384), dtype=np.float32) / np.sqrt(384))
    result = app.test_cli_runner().invoke(args=["integrity", "check"])
    assert result.exit_code == 1
    assert f"document {document['id']}: 0 chunks in the vector store" in result.output
    assert "chunks of 1 deleted document(s)" in result.output
    health = client.get("/health").get_json()
    assert health["status"] == "degraded" and any(document["id"] in problem for problem in health["problems"])

    result = app.test_cli_runner().invoke(args=["integrity", "repair"])
    assert result.exit_code == 0 and "queued 1 document(s)" in result.output, result.output
    wait_for(lambda: client.get(f"/documents/{document['id']}", headers=alice.headers).get_json()["document"]["status"]
             == "ready", 120, "the document to be re-ingested")
    assert svc.integrity.check().problems() == []
    assert client.get("/health").get_json()["problems"] == []
    assert search(client, alice, "reset the router")[0]["document_id"] == document["id"]
    assert svc.vectors.chunk_counts(Space.personal(alice.id)) == {document["id"]: document["chunks"]}


def test_a_damaged_sqlite_database_is_reported(make_app, tmp_path):
    app = make_app(ratelimit_register="100 per minute", ratelimit_login="100 per minute")
    users = Users(app, app.test_client())
    for _ in range(20):
        users.register()
    svc = app.extensions["docchat"]
    assert svc.integrity.check().database_problems == []
    svc.db.engine.dispose()  # checkpoints the WAL into the file
    path = tmp_path / "data" / "app.db"
    size = path.stat().st_size
    with path.open("r+b") as handle:  # a disk error: one page in the middle overwritten
        handle.seek((size // 4096 // 2) * 4096)
        handle.write(b"\xff" * 4096)
    problems = svc.integrity.check().problems()
    assert problems and "SQLite" in problems[0], problems
