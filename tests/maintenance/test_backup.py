"""Backup while the server runs, restore into a fresh install: the same answers, sources and sessions."""
from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from app import create_app
from config import Config
from rag.spaces import Space
from tests.conftest import Users, search, upload


def _backup(app, out: Path) -> Path:
    result = app.test_cli_runner().invoke(args=["backup", "create", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return Path(result.output.strip().splitlines()[-1])


def _restored(archive: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A fresh install with `archive` restored into it, every document whole (none re-queued)."""
    fresh = create_app(Config.for_testing(tmp_path / "fresh-data", jwt_secret_key="x" * 8 + "f4K9pQ2wE7rT1yU6iO3aS5dG"))
    result = fresh.test_cli_runner().invoke(args=["backup", "restore", str(archive)])
    assert result.exit_code == 0 and "0 documents queued" in result.output, result.output
    return fresh


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


@pytest.mark.slow  # a `flask backup` process over 20,000 vectors (~27 s here)
def test_a_backup_killed_midway_leaves_no_archive_and_the_next_one_works(make_app, samples, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    import numpy as np

    from fixtures.server import ROOT
    from rag.types import Chunk

    app = make_app()
    client = app.test_client()
    alice = Users(app, client).register()
    document = upload(client, alice, samples["md"]).get_json()["document"]
    vectors = app.extensions["docchat"].vectors
    bulk = [Chunk(text=f"filler chunk {n} " * 20, index=n, tokens=60) for n in range(20000)]
    rng = np.random.default_rng(0)
    for start in range(0, len(bulk), 5000):  # enough data that the backup takes a while
        vectors.add(Space.personal(alice.id), "bulk-document", bulk[start:start + 5000], rng.random((5000, 384), dtype=np.float32))
    out = tmp_path / "backups"
    env = {**os.environ, "DATA_DIR": str(tmp_path / "data"), "HF_HUB_OFFLINE": "1"}
    flask = Path(sys.executable).with_name("flask")
    backup = subprocess.Popen([str(flask), "--app", "app", "backup", "create", "--out", str(out)], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert backup.stderr is not None
    said = []
    for line in backup.stderr:  # its progress: tables, then vectors (20,000 of them), then files
        said.append(line.decode())
        if said[-1].strip().startswith("vectors of user"):
            break
    assert said and said[-1].strip().startswith("vectors of user"), "".join(said)[-2000:]
    assert list(out.glob(".*.partial"))  # the archive is being written
    backup.send_signal(signal.SIGKILL)  # mid-archive
    backup.wait(timeout=30)
    assert not list(out.glob("docchat-backup-*.tar.gz"))  # no torn archive under a real name
    assert list(out.glob(".*.partial"))
    assert client.get(f"/documents/{document['id']}", headers=alice.headers).status_code == 200  # unaffected
    assert vectors.count(Space.personal(alice.id)) == 20000 + document["chunks"]
    archive = _backup(app, out)  # the next backup works, and clears the dead one's leftovers
    assert archive.exists() and not list(out.glob(".*.partial"))


def test_versions_survive_a_restore(make_app, tmp_path):
    from tests.rag.test_versions import NEW_TEXT, OLD_TEXT, QUESTION, _write

    app = make_app()
    client = app.test_client()
    alice = Users(app, client).register()
    upload(client, alice, _write(tmp_path / "old", "vault.txt", OLD_TEXT))
    document = upload(client, alice, _write(tmp_path / "new", "vault.txt", NEW_TEXT)).get_json()["document"]
    archive = _backup(app, tmp_path / "backups")

    fresh = _restored(archive, tmp_path)
    try:
        client = fresh.test_client()
        alice_again = Users(fresh, client).login(alice.username, alice.password)
        versions = client.get(f"/documents/{document['id']}/versions", headers=alice_again.headers).get_json()
        assert [(v["version"], v["current"]) for v in versions["versions"]] == [(2, True), (1, False)]
        texts = " ".join(r["excerpt"] for r in search(client, alice_again, QUESTION, k=10))
        assert "9902" in texts and "4417" not in texts
        restored = client.post(f"/documents/{document['id']}/versions/1/restore", headers=alice_again.headers)
        assert restored.status_code == 200 and restored.get_json()["document"]["status"] == "ready"
        texts = " ".join(r["excerpt"] for r in search(client, alice_again, QUESTION, k=10))
        assert "4417" in texts and "9902" not in texts  # version 1's chunks came back from the archive
        assert fresh.extensions["docchat"].integrity.check().problems() == []
    finally:
        fresh.extensions["docchat"].close()


@pytest.mark.postgres
def test_an_install_moves_from_sqlite_to_postgresql_and_back(make_app, fresh_postgres_url, tmp_path):
    """The archive is portable: a SQLite install restored onto PostgreSQL answers the same, keeps
    its users' logins, and new accounts there get new ids (the sequences continue past the
    restored ones); backed up again there, it restores onto SQLite."""
    app = make_app()
    client = app.test_client()
    alice = Users(app, client).register()
    note = tmp_path / "ferry.txt"
    note.write_text("Harbour timetable.\n\nThe harbour ferry leaves at 7:45 every morning from pier two.\n")
    assert upload(client, alice, note).status_code == 201
    before = search(client, alice, "When does the ferry leave?")
    archive = _backup(app, tmp_path / "backups")

    on_postgres = create_app(Config.for_testing(tmp_path / "pg-data", database_url=fresh_postgres_url))
    try:
        result = on_postgres.test_cli_runner().invoke(args=["backup", "restore", str(archive)])
        assert result.exit_code == 0, result.output
        assert on_postgres.extensions["docchat"].db.engine.dialect.name == "postgresql"
        pg_client = on_postgres.test_client()
        accounts = Users(on_postgres, pg_client)
        alice_there = accounts.login(alice.username, alice.password)
        assert [r["excerpt"] for r in search(pg_client, alice_there, "When does the ferry leave?")] == \
            [r["excerpt"] for r in before]
        assert accounts.register().id > alice.id  # the id sequence continues past the restored rows
        second = _backup(on_postgres, tmp_path / "pg-backups")
    finally:
        on_postgres.extensions["docchat"].close()

    back_on_sqlite = create_app(Config.for_testing(tmp_path / "sqlite-again"))
    try:
        result = back_on_sqlite.test_cli_runner().invoke(args=["backup", "restore", str(second)])
        assert result.exit_code == 0 and "restored 2 users, 1 documents" in result.output, result.output
        again = Users(back_on_sqlite, back_on_sqlite.test_client()).login(alice.username, alice.password)
        assert again.id == alice.id
    finally:
        back_on_sqlite.extensions["docchat"].close()


def test_the_audit_log_travels_with_a_backup(make_app, tmp_path):
    app = make_app()
    client = app.test_client()
    users = Users(app, client)
    admin, mallory = users.admin(), users.register()
    client.post("/auth/login", json={"username": mallory.username, "password": "guessing wrong"})
    archive = _backup(app, tmp_path / "backups")

    fresh = create_app(Config.for_testing(tmp_path / "fresh-data", jwt_secret_key="x" * 8 + "f4K9pQ2wE7rT1yU6iO3aS5dG"))
    try:
        assert fresh.test_cli_runner().invoke(args=["backup", "restore", str(archive)]).exit_code == 0
        client = fresh.test_client()
        admin_again = Users(fresh, client).login(admin.username, admin.password)
        log = client.get("/admin/audit?per_page=200", headers=admin_again.headers).get_json()["events"]
        failed = [event for event in log if event["event"] == "login.failed"]
        assert [event["actor"] for event in failed] == [mallory.username]
        # the archive was written before its own "backup.created" was recorded; the restore is recorded here
        assert "backup.restored" in {event["event"] for event in log}
    finally:
        fresh.extensions["docchat"].close()


def test_workspaces_their_members_and_documents_travel_with_a_backup(make_app, samples, tmp_path):
    app = make_app()
    client = app.test_client()
    users = Users(app, client)
    olga, vic = users.register(), users.register()
    workspace = client.post("/workspaces", json={"name": "Lab"}, headers=olga.headers).get_json()["workspace"]
    client.post(f"/workspaces/{workspace['id']}/members", json={"username": vic.username, "role": "viewer"},
                headers=olga.headers)
    with samples["md"].open("rb") as handle:
        shared = client.post(f"/upload?wait=true&workspace={workspace['id']}", headers=olga.headers,
                             data={"file": (handle, "zephyr.md")}, content_type="multipart/form-data")
    assert shared.status_code == 201
    question = "How long do I hold the button to reset the Zephyr-9 router?"
    before = search(client, vic, question)
    archive = _backup(app, tmp_path / "backups")
    with tarfile.open(archive) as contents:
        names = contents.getnames()
    space = Space.workspace(workspace["id"])
    assert f"vectors/{space.key}.npy" in names and any(name.startswith(f"uploads/{space.folder}/") for name in names)

    fresh = _restored(archive, tmp_path)
    try:
        client = fresh.test_client()
        vic_again = Users(fresh, client).login(vic.username, vic.password)
        [listed] = client.get("/workspaces", headers=vic_again.headers).get_json()["workspaces"]
        assert (listed["id"], listed["name"], listed["role"], listed["members"]) == (workspace["id"], "Lab", "viewer", 2)
        documents = client.get(f"/documents?workspace={workspace['id']}", headers=vic_again.headers).get_json()
        assert [d["id"] for d in documents["documents"]] == [shared.get_json()["document"]["id"]]
        after = search(client, vic_again, question)
        assert [(r["document_id"], r["workspace_id"], r["excerpt"]) for r in after] == [
            (r["document_id"], r["workspace_id"], r["excerpt"]) for r in before]
        assert after[0]["workspace_id"] == workspace["id"]
        assert fresh.extensions["docchat"].integrity.check().problems() == []
    finally:
        fresh.extensions["docchat"].close()
