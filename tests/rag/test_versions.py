"""Document versions through the real HTTP app, real embedder and real Chroma: new content under the
same name (or PUT) makes a version, only the current version is retrieved, older ones are listed,
restored without re-embedding, and deleted; a failed new version leaves the old one answering."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from rag.spaces import Space
from tests.conftest import Users, assert_error, search, upload

OLD_TEXT = ("Vault procedures.\n\nThe vault door code is 4417 and it is changed every spring by the "
            "night manager.\n\nVisitors sign the blue ledger at the front desk.\n")
NEW_TEXT = ("Vault procedures.\n\nThe vault door code is 9902 and it is changed every autumn by the "
            "head of security.\n\nVisitors sign the green ledger at the front desk.\n")
QUESTION = "What is the vault door code and who changes it?"


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def _put(client, account, document_id: str, path: Path, wait: bool = True) -> Any:
    with path.open("rb") as handle:
        return client.put(f"/documents/{document_id}{'?wait=true' if wait else ''}", headers=account.headers,
                          data={"file": (handle, path.name)}, content_type="multipart/form-data")


def _versions(client, account, document_id: str) -> dict[str, Any]:
    response = client.get(f"/documents/{document_id}/versions", headers=account.headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def _texts(results: list[dict[str, Any]]) -> str:
    return " ".join(result["excerpt"] for result in results)


@pytest.fixture
def two_versions(app, client, users, tmp_path):
    """vault.txt uploaded twice with different content: version 1 then version 2."""
    account = users.register()
    first = upload(client, account, _write(tmp_path / "old", "vault.txt", OLD_TEXT))
    assert first.status_code == 201, first.get_json()
    second = upload(client, account, _write(tmp_path / "new", "vault.txt", NEW_TEXT))
    assert second.status_code == 201, second.get_json()
    return account, first.get_json()["document"], second.get_json()["document"]


def test_new_content_under_the_same_name_is_version_2_and_only_it_is_retrieved(app, client, two_versions):
    account, first, second = two_versions
    assert second["id"] == first["id"] and first["version"] == 1
    assert (second["version"], second["versions"], second["current_version"]) == (2, 2, 2)
    assert second["sha256"] != first["sha256"] and second["status"] == "ready"
    listed = client.get("/documents", headers=account.headers).get_json()["documents"]
    assert [(d["id"], d["version"]) for d in listed] == [(first["id"], 2)]  # one document, not two

    results = search(client, account, QUESTION, k=10)
    assert results and {(r["document_id"], r["version"]) for r in results} == {(first["id"], 2)}
    assert "9902" in _texts(results) and "4417" not in _texts(results)
    vectors = app.extensions["docchat"].vectors
    assert vectors.count(Space.personal(account.id)) == first["chunks"] + second["chunks"]  # version 1 kept, in the archive
    assert len(vectors.chunk_counts(Space.personal(account.id))) == 1 and len(vectors.chunk_counts(Space.personal(account.id), archived=True)) == 1


def test_old_versions_are_listed_restored_without_embedding_and_deleted(app, client, two_versions):
    account, first, _ = two_versions
    listing = _versions(client, account, first["id"])
    assert [(v["version"], v["current"], v["status"]) for v in listing["versions"]] == [(2, True, "ready"),
                                                                                        (1, False, "ready")]
    assert listing["versions"][1]["sha256"] == first["sha256"] and listing["document"]["version"] == 2

    services = app.extensions["docchat"]
    restored = client.post(f"/documents/{first['id']}/versions/1/restore", headers=account.headers)
    assert restored.status_code == 200, restored.get_json()
    document = restored.get_json()["document"]
    assert (document["version"], document["current_version"], document["status"]) == (1, 1, "ready")
    assert document["sha256"] == first["sha256"] and document["chunks"] == first["chunks"]  # ready at once: moved back, not re-ingested
    results = search(client, account, QUESTION, k=10)
    assert {r["version"] for r in results} == {1} and "4417" in _texts(results) and "9902" not in _texts(results)

    deleted = client.delete(f"/documents/{first['id']}/versions/2", headers=account.headers)
    assert deleted.status_code == 200 and deleted.get_json()["document"]["versions"] == 1
    assert services.vectors.count(Space.personal(account.id)) == first["chunks"]  # version 2's chunks are gone
    stored = list((services.config.uploads_dir / str(account.id)).iterdir())
    assert len(stored) == 1  # and its file
    assert_error(client.delete(f"/documents/{first['id']}/versions/1", headers=account.headers), 409, "LAST_VERSION")
    assert_error(client.post(f"/documents/{first['id']}/versions/7/restore", headers=account.headers), 404,
                 "NOT_FOUND")
    assert search(client, account, QUESTION)[0]["version"] == 1


def test_deleting_the_current_version_falls_back_to_the_previous_one(app, client, two_versions):
    account, first, _ = two_versions
    response = client.delete(f"/documents/{first['id']}/versions/2", headers=account.headers)
    assert response.status_code == 200
    assert (response.get_json()["document"]["version"], response.get_json()["document"]["current_version"]) == (1, 1)
    results = search(client, account, QUESTION, k=10)
    assert {r["version"] for r in results} == {1} and "4417" in _texts(results)


def test_put_makes_a_new_version_and_same_bytes_change_nothing_or_restore(app, client, users, tmp_path):
    account = users.register()
    old, new = _write(tmp_path / "a", "vault.txt", OLD_TEXT), _write(tmp_path / "b", "vault-v2.txt", NEW_TEXT)
    document = upload(client, account, old).get_json()["document"]

    replaced = _put(client, account, document["id"], new)
    assert replaced.status_code == 201, replaced.get_json()
    body = replaced.get_json()["document"]
    assert (body["id"], body["version"], body["current_version"], body["filename"]) == (document["id"], 2, 2,
                                                                                         "vault-v2.txt")
    assert "9902" in _texts(search(client, account, QUESTION))

    unchanged = _put(client, account, document["id"], new)
    assert unchanged.status_code == 200 and unchanged.get_json()["document"]["versions"] == 2
    back = _put(client, account, document["id"], old)  # the bytes of version 1: it is restored
    assert back.status_code == 200
    assert (back.get_json()["document"]["version"], back.get_json()["document"]["versions"]) == (1, 2)
    assert "4417" in _texts(search(client, account, QUESTION)) and "9902" not in _texts(search(client, account, QUESTION))

    other = upload(client, account, _write(tmp_path / "c", "other.txt", "Lunch is served at noon in the canteen.\n"))
    clash = _put(client, account, document["id"], tmp_path / "c" / "other.txt")
    assert_error(clash, 409, "DUPLICATE_CONTENT")
    assert other.get_json()["document"]["id"] != document["id"]
    assert _versions(client, account, document["id"])["document"]["versions"] == 2  # nothing was added

    assert_error(client.put(f"/documents/{document['id']}", headers=account.headers, data={},
                            content_type="multipart/form-data"), 400, "VALIDATION_ERROR")
    assert_error(_put(client, account, "0" * 32, new), 404, "NOT_FOUND")


def test_a_failed_new_version_leaves_the_previous_one_answering(app, client, users, samples, tmp_path):
    account = users.register()
    document = upload(client, account, samples["pdf"]).get_json()["document"]
    broken = tmp_path / samples["pdf"].name
    broken.write_bytes(samples["pdf"].read_bytes()[:400])  # a real header, then cut off: ingestion fails
    failed = assert_error(upload(client, account, broken), 422, "UNPROCESSABLE_DOCUMENT")["details"]["document"]
    assert failed["id"] == document["id"] and failed["status"] == "failed" and failed["error"]
    assert (failed["version"], failed["versions"], failed["current_version"]) == (2, 2, 1)
    results = search(client, account, "When does the lighthouse keeper polish the lens?")
    assert results and {(r["document_id"], r["version"]) for r in results} == {(document["id"], 1)}
    again = upload(client, account, samples["pdf"])  # the good bytes again: version 1 is current, unchanged
    assert again.status_code == 200 and again.get_json()["document"]["current_version"] == 1


def test_new_document_keeps_a_same_named_file_apart(app, client, users, tmp_path):
    account = users.register()
    first = upload(client, account, _write(tmp_path / "a", "vault.txt", OLD_TEXT)).get_json()["document"]
    with _write(tmp_path / "b", "vault.txt", NEW_TEXT).open("rb") as handle:
        second = client.post("/upload?wait=true&new_document=true", headers=account.headers,
                             data={"file": (handle, "vault.txt")}, content_type="multipart/form-data")
    assert second.status_code == 201
    assert second.get_json()["document"]["id"] != first["id"] and second.get_json()["document"]["version"] == 1
    texts = _texts(search(client, account, QUESTION, k=10))
    assert "4417" in texts and "9902" in texts


def test_versions_of_another_user_are_not_found(client, users, two_versions):
    _, first, _ = two_versions
    mallory = users.register()
    for response in (client.get(f"/documents/{first['id']}/versions", headers=mallory.headers),
                     client.post(f"/documents/{first['id']}/versions/1/restore", headers=mallory.headers),
                     client.delete(f"/documents/{first['id']}/versions/1", headers=mallory.headers)):
        assert_error(response, 404, "NOT_FOUND")
    assert search(client, mallory, QUESTION) == []


def test_deleting_the_document_removes_every_version(app, client, two_versions):
    account, first, _ = two_versions
    assert client.delete(f"/documents/{first['id']}", headers=account.headers).status_code == 204
    services = app.extensions["docchat"]
    assert services.vectors.count(Space.personal(account.id)) == 0
    assert not list((services.config.uploads_dir / str(account.id)).iterdir())
    assert_error(client.get(f"/documents/{first['id']}/versions", headers=account.headers), 404, "NOT_FOUND")


def test_misplaced_chunks_are_never_retrieved_and_the_integrity_repair_moves_them(app, client, two_versions):
    account, first, _ = two_versions
    services = app.extensions["docchat"]
    old_id = [v for v in services.documents.versions(account.id, first["id"]) if v.version == 1][0].id
    services.vectors.move(Space.personal(account.id), old_id, archived=False)  # as if a crash left them in the live collection
    assert "4417" not in _texts(search(client, account, QUESTION, k=10))  # still only the current version
    assert any("wrong collection" in problem for problem in services.integrity.check().problems())
    outcome = services.integrity.repair()
    assert outcome.moved == 1 and outcome.after.problems() == []
    assert services.vectors.chunk_counts(Space.personal(account.id), archived=True) == {old_id: first["chunks"]}


def test_the_answer_uses_the_newest_version(llm_app, tmp_path):
    client = llm_app.test_client()
    account = Users(llm_app, client).register()
    assert upload(client, account, _write(tmp_path / "a", "vault.txt", OLD_TEXT)).status_code == 201
    assert upload(client, account, _write(tmp_path / "b", "vault.txt", NEW_TEXT)).status_code == 201
    response = client.post("/chat/start", headers=account.headers,
                           json={"message": QUESTION, "generation": {"num_beams": 1, "temperature": 0,
                                                                     "max_new_tokens": 40}})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["sources"] and {s["version"] for s in body["sources"]} == {2}
    assert "4417" not in body["messages"][-1]["content"]  # the old code was never in the prompt
    assert "9902" in " ".join(s["excerpt"] for s in body["sources"])


def test_existing_documents_become_version_1_when_the_schema_is_upgraded(database_url):
    """An install from before versions: its documents keep their ids and answer as version 1."""
    from sqlalchemy import text

    from common.database import Database
    from tests.conftest import schema_at

    db = Database(database_url)
    try:
        with schema_at(db, "0003") as connection:
            connection.execute(text("INSERT INTO users (id, username, password_hash, role, created_at) "
                                    "VALUES (1, 'old', 'x', 'user', CURRENT_TIMESTAMP)"))
            for number, status in ((1, "ready"), (2, "failed")):
                connection.execute(text(
                    "INSERT INTO documents (id, user_id, filename, type, sha256, size_bytes, storage_name, status, "
                    "progress, chunks, created_at, updated_at) VALUES (:id, 1, :name, 'txt', :sha, 10, :id, "
                    ":status, 1.0, 3, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"),
                    {"id": f"doc{number}", "name": f"f{number}.txt", "sha": f"{number}" * 64, "status": status})
        db.migrate()
        with db.engine.connect() as connection:
            rows = connection.execute(text("SELECT id, family_id, version, is_head, is_live FROM documents "
                                           "ORDER BY id")).all()
        assert [tuple(row) for row in rows] == [("doc1", "doc1", 1, True, True), ("doc2", "doc2", 1, True, False)]
    finally:
        db.close()


def test_simultaneous_new_versions_each_get_their_own_number(app, users, tmp_path):
    """Five uploads of different content under one name at the same moment: no error, versions
    1-5, one of them shown and answering once all are ingested."""
    from concurrent.futures import ThreadPoolExecutor

    account = users.register()
    paths = [_write(tmp_path / str(n), "vault.txt", OLD_TEXT.replace("4417", f"{5000 + n}")) for n in range(5)]

    def send(path: Path) -> int:
        return upload(app.test_client(), account, path, wait=False).status_code

    with ThreadPoolExecutor(max_workers=5) as pool:
        assert sorted(pool.map(send, paths)) == [202] * 5
    client = app.test_client()
    document_id = client.get("/documents", headers=account.headers).get_json()["documents"][0]["id"]
    services = app.extensions["docchat"]
    for _ in range(600):
        versions = services.documents.versions(account.id, document_id)
        if all(version.finished for version in versions):
            break
        time.sleep(0.1)
    assert sorted(version.version for version in versions) == [1, 2, 3, 4, 5]
    assert all(version.status == "ready" for version in versions)
    assert sum(version.is_head for version in versions) == 1 and sum(version.is_live for version in versions) == 1
    head = next(version for version in versions if version.is_head)
    assert head.is_live
    results = search(client, account, QUESTION, k=10)
    assert {r["version"] for r in results} == {head.version}
    assert services.integrity.check().problems() == []


def test_a_version_that_is_not_ready_cannot_be_restored(client, users, samples, tmp_path):
    """409 VERSION_NOT_READY: a failed version has no chunks to answer from."""
    alice = users.register()
    first = upload(client, alice, samples["pdf"], name="report.pdf").get_json()["document"]
    broken = tmp_path / "report.pdf"
    broken.write_bytes(samples["pdf"].read_bytes()[:400])  # a real header, then cut off
    assert upload(client, alice, broken, name="report.pdf").status_code == 422  # version 2, failed
    versions = client.get(f"/documents/{first['id']}/versions", headers=alice.headers).get_json()["versions"]
    assert [(v["version"], v["status"]) for v in versions] == [(2, "failed"), (1, "ready")]
    refused = client.post(f"/documents/{first['id']}/versions/2/restore", headers=alice.headers)
    assert_error(refused, 409, "VERSION_NOT_READY")
    document = client.get(f"/documents/{first['id']}", headers=alice.headers).get_json()["document"]
    assert document["current_version"] == 1  # answers still come from the ready version
