"""The IDOR matrix (issue 17, point 7): every route that takes an id, called by another user with the
real id of someone else's object, answers 404 exactly like an unknown id (403 where only the role
is wrong: the admin routes), and changes nothing. The routes come from the app's own URL map, so
a new route with an id fails here until the matrix knows it. Runs on PostgreSQL too."""
from __future__ import annotations

import re

from tests.conftest import assert_error, upload

# Bodies that would be valid for the owner, so a refusal is about who calls, not what is sent.
BODIES = {
    ("PATCH", "/chat/sessions/<session_id>"): {"title": "mine now"},
    ("POST", "/chat/sessions/<session_id>/branch"): {"at": 0},
    ("PATCH", "/workspaces/<workspace_id>"): {"name": "mine now"},
    ("POST", "/workspaces/<workspace_id>/members"): {"username": "{intruder}", "role": "owner"},
    ("PATCH", "/workspaces/<workspace_id>/members/<username>"): {"role": "viewer"},
    ("PATCH", "/admin/users/<user_id>"): {"role": "user"},
}
ADMIN_ONLY = ("/admin/",)  # a non-admin is refused by role: 403


def id_routes(app) -> list[tuple[str, str]]:
    """(method, rule with plain <name> placeholders) of every route that takes an id."""
    routes = []
    for rule in app.url_map.iter_rules():
        if rule.arguments and not rule.rule.startswith("/static"):
            plain = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"<\1>", rule.rule)
            routes += [(method, plain) for method in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return routes


def test_no_route_hands_one_users_objects_to_another(app, client, users, samples, tmp_path):
    alice, mallory = users.register(), users.register()
    document = upload(client, alice, samples["md"]).get_json()["document"]
    session_id = client.post("/chat/start", json={}, headers=alice.headers).get_json()["sessionId"]
    key_id = client.post("/auth/api-keys", json={"name": "k"}, headers=alice.headers).get_json()["id"]
    workspace_id = client.post("/workspaces", json={"name": "alice's"}, headers=alice.headers).get_json()["workspace"]["id"]
    values = {"document_id": document["id"], "version": "1", "session_id": session_id, "key_id": str(key_id),
              "workspace_id": workspace_id, "username": alice.username, "user_id": str(alice.id),
              "task": "compact_storage"}
    checked = []
    for method, rule in id_routes(app):
        path = re.sub(r"<([^>]+)>", lambda match: values[match.group(1)], rule)
        body = BODIES.get((method, rule))
        if body is not None:
            body = {key: value.format(intruder=mallory.username) if isinstance(value, str) else value
                    for key, value in body.items()}
        if method == "PUT":  # a new version of the document: multipart, like an upload
            response = client.put(path, headers=mallory.headers,
                                  data={"file": (samples["md"].open("rb"), "notes.md")},
                                  content_type="multipart/form-data")
        else:
            response = client.open(path, method=method, json=body, headers=mallory.headers)
        expected = 403 if rule.startswith(ADMIN_ONLY) else 404
        assert response.status_code == expected, (method, rule, response.status_code, response.get_json())
        assert_error(response, expected)
        checked.append((method, rule))
    assert len(checked) >= 21  # documents, versions, sessions, branches, exports, analytics, keys, workspaces, ...

    # Nothing changed for alice.
    assert client.get(f"/documents/{document['id']}", headers=alice.headers).get_json()["document"]["versions"] == 1
    assert client.get(f"/chat/sessions/{session_id}", headers=alice.headers).status_code == 200
    assert [key["id"] for key in client.get("/auth/api-keys", headers=alice.headers).get_json()["api_keys"]] == [key_id]
    workspace = client.get(f"/workspaces/{workspace_id}", headers=alice.headers).get_json()
    assert workspace["workspace"]["name"] == "alice's" and workspace["members"] == [
        {"username": alice.username, "role": "owner"}]
    assert client.get("/auth/me", headers=alice.headers).get_json()["role"] == "user"


WRITES = ("PUT", "DELETE", "POST")  # on a document route: upload a version, delete, restore


def test_a_workspace_s_documents_answer_outsiders_404_and_viewers_403_on_every_document_route(
        app, client, users, samples):
    """Every route that takes a document id, on a document in a workspace: a non-member gets 404
    like an unknown id; a viewer reads, and gets 403 where only the role is wrong; nothing changes."""
    olga, vic, mallory = users.register(), users.register(), users.register()
    workspace_id = client.post("/workspaces", json={"name": "team"}, headers=olga.headers).get_json()["workspace"]["id"]
    client.post(f"/workspaces/{workspace_id}/members", json={"username": vic.username, "role": "viewer"},
                headers=olga.headers)
    with samples["md"].open("rb") as handle:
        document = client.post(f"/upload?wait=true&workspace={workspace_id}", headers=olga.headers,
                               data={"file": (handle, "zephyr.md")},
                               content_type="multipart/form-data").get_json()["document"]
    routes = [(method, rule) for method, rule in id_routes(app) if "<document_id>" in rule]
    assert len(routes) >= 6
    for method, rule in routes:
        path = rule.replace("<document_id>", document["id"]).replace("<version>", "1")
        for account, expected in ((mallory, 404), (vic, 403 if method in WRITES else 200)):
            if method == "PUT":
                response = client.put(path, headers=account.headers, data={"file": (samples["md"].open("rb"), "x.md")},
                                      content_type="multipart/form-data")
            else:
                response = client.open(path, method=method, headers=account.headers)
            assert response.status_code == expected, (account.username, method, rule, response.get_json())
    after = client.get(f"/documents/{document['id']}", headers=olga.headers).get_json()["document"]
    assert after["versions"] == 1 and after["status"] == "ready"
