"""Workspaces and their members (issue 17, point 1, first slice): roles decide who may do what,
membership is read at every request, and an outsider cannot tell a workspace from a missing one."""
from __future__ import annotations

from tests.conftest import assert_error


def create(client, owner, name: str = "Harbour team") -> dict:
    response = client.post("/workspaces", json={"name": name}, headers=owner.headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["workspace"]


def add(client, owner, workspace: dict, username: str, role: str):
    return client.post(f"/workspaces/{workspace['id']}/members", json={"username": username, "role": role},
                       headers=owner.headers)


def test_a_workspace_lists_its_members_and_each_caller_sees_its_own_role(client, users):
    olga, vic = users.register(), users.register()
    workspace = create(client, olga)
    assert workspace["role"] == "owner" and workspace["members"] == 1 and workspace["name"] == "Harbour team"
    added = add(client, olga, workspace, vic.username.upper(), "viewer")  # names are case-insensitive
    assert added.status_code == 201 and added.get_json()["member"] == {"username": vic.username, "role": "viewer"}
    seen = client.get("/workspaces", headers=vic.headers).get_json()["workspaces"]
    assert [(item["id"], item["role"], item["members"]) for item in seen] == [(workspace["id"], "viewer", 2)]
    detail = client.get(f"/workspaces/{workspace['id']}", headers=vic.headers).get_json()
    assert detail["members"] == [{"username": olga.username, "role": "owner"}, {"username": vic.username, "role": "viewer"}]
    assert_error(add(client, olga, workspace, vic.username, "editor"), 409, "ALREADY_MEMBER")
    assert_error(add(client, olga, workspace, "nobody-here", "viewer"), 404)
    assert_error(add(client, olga, workspace, vic.username, "admin"), 400, "VALIDATION_ERROR")


def test_an_outsider_gets_404_for_the_workspace_and_everything_in_it(client, users):
    olga, eve = users.register(), users.register()
    workspace = create(client, olga)
    base = f"/workspaces/{workspace['id']}"
    unknown = "/workspaces/" + "0" * 32
    for path in (base, unknown):
        assert_error(client.get(path, headers=eve.headers), 404, "NOT_FOUND")
        assert_error(client.patch(path, json={"name": "mine"}, headers=eve.headers), 404, "NOT_FOUND")
        assert_error(client.delete(path, headers=eve.headers), 404, "NOT_FOUND")
        assert_error(client.post(f"{path}/members", json={"username": eve.username, "role": "owner"},
                                 headers=eve.headers), 404, "NOT_FOUND")
        assert_error(client.patch(f"{path}/members/{olga.username}", json={"role": "viewer"}, headers=eve.headers),
                     404, "NOT_FOUND")
        assert_error(client.delete(f"{path}/members/{olga.username}", headers=eve.headers), 404, "NOT_FOUND")
    assert client.get("/workspaces", headers=eve.headers).get_json()["workspaces"] == []
    assert client.get(base, headers=olga.headers).get_json()["workspace"]["name"] == "Harbour team"  # untouched


def test_roles_decide_and_a_removed_member_loses_access_at_once(client, users):
    olga, ed, vic = users.register(), users.register(), users.register()
    workspace = create(client, olga)
    base = f"/workspaces/{workspace['id']}"
    add(client, olga, workspace, ed.username, "editor")
    add(client, olga, workspace, vic.username, "viewer")
    for member in (ed, vic):
        assert_error(client.patch(base, json={"name": "renamed"}, headers=member.headers), 403, "FORBIDDEN")
        assert_error(client.delete(base, headers=member.headers), 403, "FORBIDDEN")
        assert_error(add(client, member, workspace, "x" + member.username, "viewer"), 403, "FORBIDDEN")
    assert client.patch(base, json={"name": "Renamed"}, headers=olga.headers).get_json()["workspace"]["name"] == "Renamed"
    promoted = client.patch(f"{base}/members/{vic.username}", json={"role": "editor"}, headers=olga.headers)
    assert promoted.status_code == 200 and promoted.get_json()["member"]["role"] == "editor"
    assert client.delete(f"{base}/members/{vic.username}", headers=olga.headers).status_code == 204
    assert_error(client.get(base, headers=vic.headers), 404, "NOT_FOUND")  # the very next request
    assert client.delete(f"{base}/members/{ed.username}", headers=ed.headers).status_code == 204  # leaving
    assert_error(client.get(base, headers=ed.headers), 404, "NOT_FOUND")


def test_the_last_owner_can_neither_leave_nor_step_down(client, users):
    olga, otto = users.register(), users.register()
    workspace = create(client, olga)
    base = f"/workspaces/{workspace['id']}"
    assert_error(client.delete(f"{base}/members/{olga.username}", headers=olga.headers), 409, "LAST_OWNER")
    assert_error(client.patch(f"{base}/members/{olga.username}", json={"role": "editor"}, headers=olga.headers),
                 409, "LAST_OWNER")
    add(client, olga, workspace, otto.username, "owner")
    assert client.delete(f"{base}/members/{olga.username}", headers=olga.headers).status_code == 204
    assert client.get(base, headers=otto.headers).get_json()["members"] == [{"username": otto.username,
                                                                             "role": "owner"}]


def test_deleting_a_workspace_and_its_audit_trail(app, client, users):
    admin, olga, vic = users.admin(), users.register(), users.register()
    workspace = create(client, olga)
    base = f"/workspaces/{workspace['id']}"
    add(client, olga, workspace, vic.username, "viewer")
    client.patch(f"{base}/members/{vic.username}", json={"role": "editor"}, headers=olga.headers)
    client.delete(f"{base}/members/{vic.username}", headers=olga.headers)
    assert client.delete(base, headers=olga.headers).status_code == 204
    assert_error(client.get(base, headers=olga.headers), 404)
    events = client.get(f"/admin/audit?user={olga.username}", headers=admin.headers).get_json()["events"]
    by_event = {event["event"]: event for event in events}
    assert {"member.added", "member.changed", "member.removed", "workspace.deleted"} <= set(by_event)
    assert by_event["member.changed"]["details"] == {"from": "viewer", "to": "editor"}
    assert workspace["id"] in by_event["workspace.deleted"]["target"]


def test_a_deleted_owner_hands_the_workspace_to_its_longest_standing_member(app, client, users):
    olga, ed = users.register(), users.register()
    workspace = create(client, olga)
    add(client, olga, workspace, ed.username, "editor")
    assert app.test_cli_runner().invoke(args=["users", "delete", olga.username, "--yes"]).exit_code == 0
    detail = client.get(f"/workspaces/{workspace['id']}", headers=ed.headers).get_json()
    assert detail["members"] == [{"username": ed.username, "role": "owner"}]
