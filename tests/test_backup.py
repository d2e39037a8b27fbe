"""Backup while the server runs, restore into a fresh install: the same answers, sources and sessions."""
from __future__ import annotations

import tarfile
from pathlib import Path

from app import create_app
from config import Config
from tests.conftest import Users, search, upload


def _backup(app, out: Path) -> Path:
    result = app.test_cli_runner().invoke(args=["backup", "create", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return Path(result.output.strip().splitlines()[-1])


def test_restore_into_a_fresh_install_answers_the_same(make_app, samples, tmp_path):
    app = make_app()
    client = app.test_client()
    alice = Users(app, client).register()
    for kind in ("pdf", "md", "csv"):
        assert upload(client, alice, samples[kind]).status_code == 201
    svc = app.extensions["docchat"]
    session, _ = svc.sessions.start(alice.id, "Harbour questions")
    from sessions.repository import NewMessage

    svc.sessions._repository.append(alice.id, session.id, [NewMessage("user", "When is the lens polished?"),
                                                           NewMessage("assistant", "Every Thursday at dawn.")])
    before = search(client, alice, "When is the brass lens polished?")

    archive = _backup(app, tmp_path / "backups")
    assert archive.name.startswith("docchat-backup-") and archive.name.endswith(".tar.gz")
    assert not list(archive.parent.glob(".*.partial"))
    with tarfile.open(archive) as contents:
        names = contents.getnames()
    assert "manifest.json" in names and "database/users.jsonl" in names and any(n.startswith("uploads/") for n in names)

    fresh = create_app(Config.for_testing(tmp_path / "fresh-data", jwt_secret_key="x" * 8 + "f4K9pQ2wE7rT1yU6iO3aS5dG"))
    try:
        result = fresh.test_cli_runner().invoke(args=["backup", "restore", str(archive)])
        assert result.exit_code == 0, result.output
        assert "restored 1 users, 3 documents, 1 chat sessions" in result.output and "0 documents queued" in result.output
        client = fresh.test_client()
        alice_again = Users(fresh, client).login(alice.username, alice.password)  # the same password works
        after = search(client, alice_again, "When is the brass lens polished?")
        key = [(r["document_id"], r["chunk_index"], r["page"], r["excerpt"]) for r in before]
        assert [(r["document_id"], r["chunk_index"], r["page"], r["excerpt"]) for r in after] == key
        documents = client.get("/documents", headers=alice_again.headers).get_json()["documents"]
        assert {d["status"] for d in documents} == {"ready"} and len(documents) == 3
        restored = client.get(f"/chat/sessions/{session.id}", headers=alice_again.headers).get_json()
        assert [m["content"] for m in restored["messages"]] == ["When is the lens polished?", "Every Thursday at dawn."]
        again = fresh.test_cli_runner().invoke(args=["backup", "restore", str(archive)])
        assert again.exit_code != 0 and "empty install" in again.output  # never over live data
    finally:
        fresh.extensions["docchat"].close()
