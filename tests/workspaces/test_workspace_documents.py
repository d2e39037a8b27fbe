"""Documents in workspaces (issue 17, points 1-3): editors upload into a workspace, every member
reads and searches it, everybody else sees nothing of it, and a chat searches what its scope names."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from flask.testing import FlaskClient

from rag.spaces import Space
from tests.conftest import Account, assert_error, search
from tests.workspaces.test_workspaces import add, create

TXT_QUESTION = "Wie viel kostet die Gletschertour über den Großvenediger?"
MD_QUESTION = "How long do I hold the button to reset the Zephyr-9 router?"


def upload_to(client: FlaskClient, account: Account, path: Path, workspace: dict | None, wait: bool = True) -> Any:
    query = "&".join(part for part in ("wait=true" if wait else "",
                                       f"workspace={workspace['id']}" if workspace else "") if part)
    with path.open("rb") as handle:
        return client.post(f"/upload?{query}", headers=account.headers, data={"file": (handle, path.name)},
                           content_type="multipart/form-data")


def shared_team(client: FlaskClient, users: Any) -> tuple[dict, Account, Account, Account]:
    """A workspace of olga (owner) with ed (editor) and vic (viewer)."""
    olga, ed, vic = users.register(), users.register(), users.register()
    workspace = create(client, olga)
    assert add(client, olga, workspace, ed.username, "editor").status_code == 201
    assert add(client, olga, workspace, vic.username, "viewer").status_code == 201
    return workspace, olga, ed, vic


def test_an_editor_uploads_into_a_workspace_and_every_member_reads_and_searches_it(client, users, samples):
    workspace, olga, ed, vic = shared_team(client, users)
    uploaded = upload_to(client, ed, samples["txt"], workspace)
    assert uploaded.status_code == 201, uploaded.get_json()
    document = uploaded.get_json()["document"]
    assert document["workspace_id"] == workspace["id"] and document["status"] == "ready"
    for member in (olga, ed, vic):
        listed = client.get(f"/documents?workspace={workspace['id']}", headers=member.headers).get_json()
        assert [item["id"] for item in listed["documents"]] == [document["id"]]
        assert client.get(f"/documents/{document['id']}", headers=member.headers).status_code == 200
        assert client.get(f"/documents/{document['id']}/versions", headers=member.headers).status_code == 200
        found = search(client, member, TXT_QUESTION)
        assert found and found[0]["document_id"] == document["id"] and found[0]["workspace_id"] == workspace["id"]
        assert "240 Euro" in found[0]["excerpt"]
    assert client.get("/documents", headers=ed.headers).get_json()["documents"] == []  # not in ed's own space


def test_a_viewer_may_read_but_not_change_the_workspace_documents(client, users, samples):
    workspace, olga, ed, vic = shared_team(client, users)
    document = upload_to(client, ed, samples["txt"], workspace).get_json()["document"]
    base = f"/documents/{document['id']}"
    assert_error(upload_to(client, vic, samples["md"], workspace), 403, "FORBIDDEN")
    assert_error(client.delete(base, headers=vic.headers), 403, "FORBIDDEN")
    assert_error(client.delete(f"{base}/versions/1", headers=vic.headers), 403, "FORBIDDEN")
    assert_error(client.post(f"{base}/versions/1/restore", headers=vic.headers), 403, "FORBIDDEN")
    with samples["md"].open("rb") as handle:
        assert_error(client.put(base, headers=vic.headers, data={"file": (handle, "zephyr.md")},
                                content_type="multipart/form-data"), 403, "FORBIDDEN")
    assert client.get(f"/documents?workspace={workspace['id']}", headers=olga.headers).get_json()["documents"][0][
        "versions"] == 1  # nothing changed
    assert client.delete(base, headers=ed.headers).status_code == 204  # an editor may
    assert client.get(f"/documents?workspace={workspace['id']}", headers=olga.headers).get_json()["documents"] == []


def test_outsiders_and_removed_members_see_nothing_of_the_workspace(client, users, samples):
    workspace, olga, ed, vic = shared_team(client, users)
    eve = users.register()
    document = upload_to(client, ed, samples["txt"], workspace).get_json()["document"]
    base = f"/documents/{document['id']}"

    def sees_nothing(account: Account) -> None:
        assert_error(client.get(base, headers=account.headers), 404, "NOT_FOUND")
        assert_error(client.get(f"{base}/versions", headers=account.headers), 404, "NOT_FOUND")
        assert_error(client.delete(base, headers=account.headers), 404, "NOT_FOUND")
        assert_error(client.get(f"/documents?workspace={workspace['id']}", headers=account.headers), 404, "NOT_FOUND")
        assert_error(upload_to(client, account, samples["md"], workspace), 404, "NOT_FOUND")
        assert all(source["document_id"] != document["id"] for source in search(client, account, TXT_QUESTION))

    sees_nothing(eve)
    assert search(client, vic, TXT_QUESTION)[0]["document_id"] == document["id"]
    assert client.delete(f"/workspaces/{workspace['id']}/members/{vic.username}", headers=olga.headers).status_code == 204
    sees_nothing(vic)  # the very next request
    assert client.get(base, headers=olga.headers).status_code == 200  # still there for the team


def test_the_same_bytes_are_one_document_per_space(client, users, samples):
    workspace, olga, _ed, _vic = shared_team(client, users)
    own = upload_to(client, olga, samples["md"], None).get_json()["document"]
    shared = upload_to(client, olga, samples["md"], workspace)
    assert shared.status_code == 201  # a new document in the workspace, not the personal one returned
    assert shared.get_json()["document"]["id"] != own["id"] and own["workspace_id"] is None
    again = upload_to(client, olga, samples["md"], workspace)
    assert again.status_code == 200 and again.get_json()["document"]["id"] == shared.get_json()["document"]["id"]


def test_deleting_a_workspace_removes_its_documents_chunks_and_files(app, client, users, samples):
    workspace, olga, ed, _vic = shared_team(client, users)
    document = upload_to(client, ed, samples["md"], workspace).get_json()["document"]
    services = app.extensions["docchat"]
    space = Space.workspace(workspace["id"])
    folder = services.config.uploads_dir / space.folder
    assert services.vectors.count(space) == document["chunks"] > 0 and any(folder.iterdir())
    assert client.delete(f"/workspaces/{workspace['id']}", headers=olga.headers).status_code == 204
    assert services.vectors.count(space) == 0 and not folder.exists()
    assert_error(client.get(f"/documents/{document['id']}", headers=ed.headers), 404, "NOT_FOUND")
    assert all(source["document_id"] != document["id"] for source in search(client, ed, MD_QUESTION))


def test_a_deleted_uploader_s_workspace_documents_stay_with_the_team(app, client, users, samples):
    workspace, olga, ed, vic = shared_team(client, users)
    document = upload_to(client, ed, samples["md"], workspace).get_json()["document"]
    app.extensions["docchat"].users.delete(ed.username)
    assert client.get(f"/documents/{document['id']}", headers=vic.headers).status_code == 200
    assert search(client, olga, MD_QUESTION)[0]["document_id"] == document["id"]


def test_a_chat_scope_naming_what_the_caller_cannot_read_is_404_and_a_session_shows_its_scope(client, users, samples):
    workspace, olga, ed, _vic = shared_team(client, users)
    eve = users.register()
    document = upload_to(client, ed, samples["md"], workspace).get_json()["document"]
    for scope in ({"workspaces": [workspace["id"]]}, {"documents": [document["id"]]}, {"workspaces": ["0" * 32]}):
        assert_error(client.post("/chat/start", json={"scope": scope}, headers=eve.headers), 404, "NOT_FOUND")
    assert client.get("/chat/sessions", headers=eve.headers).get_json()["sessions"] == []  # none left behind
    assert_error(client.post("/chat/start", json={"scope": {"spaces": []}}, headers=olga.headers), 400,
                 "VALIDATION_ERROR")
    scope = {"workspaces": [workspace["id"], "personal"], "documents": [document["id"]]}
    started = client.post("/chat/start", json={"scope": scope}, headers=olga.headers)
    assert started.status_code == 201 and started.get_json()["scope"] == scope
    session = client.get(f"/chat/sessions/{started.get_json()['sessionId']}", headers=olga.headers).get_json()
    assert session["scope"] == scope
    plain = client.post("/chat/start", json={}, headers=olga.headers).get_json()
    assert plain["scope"] is None


def test_a_chat_answers_only_from_its_scope(llm_app, samples, tmp_path):
    """The same question over a personal document and a workspace's one on the same subject: the
    scope decides which of them the answer's sources come from."""
    from tests.conftest import Users

    client = llm_app.test_client()
    users = Users(llm_app, client)
    workspace, olga, ed, _vic = shared_team(client, users)
    own = upload_to(client, olga, samples["md"], None).get_json()["document"]
    lab = tmp_path / "lab-router.md"
    lab.write_text("# Lab router\n\nTo reset the Zephyr-9 router in the team lab, hold the recessed button for "
                   "exactly twelve seconds.\n")
    shared = upload_to(client, ed, lab, workspace).get_json()["document"]

    def sources(scope: dict | None) -> list[dict]:
        body: dict[str, Any] = {"message": MD_QUESTION, "generation": {"max_new_tokens": 8}}
        if scope is not None:
            body["scope"] = scope
        response = client.post("/chat/start", json=body, headers=olga.headers)
        assert response.status_code == 201, response.get_json()
        return response.get_json()["sources"]

    everything = sources(None)
    assert {(source["document_id"], source["workspace_id"]) for source in everything} == {
        (own["id"], None), (shared["id"], workspace["id"])}
    team_only = sources({"workspaces": [workspace["id"]]})
    assert team_only and {(source["document_id"], source["workspace_id"]) for source in team_only} == {
        (shared["id"], workspace["id"])}
    one_document = sources({"documents": [own["id"]]})
    assert one_document and {source["document_id"] for source in one_document} == {own["id"]}
    assert "seventeen seconds" in "".join(source["excerpt"] for source in one_document)
    personal = sources({"workspaces": ["personal"]})
    assert {source["document_id"] for source in personal} == {own["id"]}

    model = client.get("/models", headers=olga.headers).get_json()["active"]

    def v1(account: Account, scope: dict) -> Any:
        return client.post("/v1/chat/completions", headers=account.headers, json={
            "model": f"{model}+rag", "max_tokens": 8, "scope": scope,
            "messages": [{"role": "user", "content": MD_QUESTION}]})

    answered = v1(olga, {"workspaces": [workspace["id"]]})
    assert answered.status_code == 200, answered.get_json()
    assert {source["document_id"] for source in answered.get_json()["sources"]} == {shared["id"]}
    refused = v1(users.register(), {"workspaces": [workspace["id"]]})
    assert refused.status_code == 404 and "workspace" in str(refused.get_json()).lower()


def test_existing_documents_and_sessions_stay_as_they_were_when_the_schema_is_upgraded(database_url):
    """An install from before workspace documents (migration 0007): its documents stay in their
    owners' personal spaces, and its sessions keep searching everything."""
    from sqlalchemy import text

    from common.database import Database
    from rag.repository import DocumentRepository
    from tests.conftest import schema_at

    db = Database(database_url)
    try:
        with schema_at(db, "0007") as connection:
            connection.execute(text("INSERT INTO users (id, username, password_hash, role, created_at, token_key) "
                                    "VALUES (1, 'old', 'x', 'user', CURRENT_TIMESTAMP, 'k')"))
            connection.execute(text(
                "INSERT INTO documents (id, family_id, version, is_head, is_live, user_id, filename, type, sha256, "
                "size_bytes, storage_name, status, progress, chunks, created_at, updated_at) VALUES "
                "(:id, :id, 1, :yes, :yes, 1, 'notes.txt', 'txt', :sha, 10, :name, 'ready', 1.0, 3, "
                "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"), {"id": "a" * 32, "yes": True, "sha": "1" * 64,
                                                           "name": "a" * 32 + ".txt"})
            connection.execute(text("INSERT INTO chat_sessions (public_id, user_id, title, summarized_count, "
                                    "created_at, last_active) VALUES ('s1', 1, 'old chat', 0, CURRENT_TIMESTAMP, "
                                    "CURRENT_TIMESTAMP)"))
        db.migrate()
        repository = DocumentRepository(db)
        [document] = repository.of_space(Space.personal(1))
        assert document.id == "a" * 32 and document.workspace_id is None and document.is_live
        with db.engine.connect() as connection:
            assert connection.execute(text("SELECT scope FROM chat_sessions")).scalar() is None
    finally:
        db.close()


def test_the_cli_ingests_into_a_workspace_for_its_editors_only(app, client, users, samples):
    workspace, olga, ed, vic = shared_team(client, users)
    result = app.test_cli_runner().invoke(args=["ingest", ed.username, str(samples["md"]), "--workspace",
                                                workspace["id"]])
    assert result.exit_code == 0, result.output
    assert "1 of 1 files ready" in result.output
    listed = client.get(f"/documents?workspace={workspace['id']}", headers=vic.headers).get_json()["documents"]
    assert [(item["filename"], item["workspace_id"]) for item in listed] == [("zephyr.md", workspace["id"])]
    refused = app.test_cli_runner().invoke(args=["ingest", vic.username, str(samples["txt"]), "--workspace",
                                                 workspace["id"]])
    assert refused.exit_code != 0 and "editor role" in refused.output
    assert client.get("/documents", headers=vic.headers).get_json()["documents"] == []
