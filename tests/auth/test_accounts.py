"""Account care (issue 17, point 4) and the audit log (point 5): changing a password, an admin's
list, role change, disable and password reset, the last admin kept, the CLI, and every security
event recorded with who, what, target and address."""
from __future__ import annotations

import base64

from tests.conftest import Account, assert_error


def login(client, username: str, password: str):
    return client.post("/auth/login", json={"username": username, "password": password})


def admin_user(client, admin: Account, username: str) -> dict:
    listed = client.get(f"/admin/users?q={username}", headers=admin.headers).get_json()["users"]
    return next(user for user in listed if user["username"] == username)


def test_changing_a_password_ends_every_other_login_and_keeps_the_callers(client, users):
    alice = users.register()
    other = users.login(alice.username, alice.password)  # a second login (another device)
    key = client.post("/auth/api-keys", json={"name": "script"}, headers=alice.headers).get_json()["key"]
    assert_error(client.post("/auth/password", json={"current_password": "wrong one", "new_password": "new horse 12"},
                             headers=alice.headers), 401, "INVALID_CREDENTIALS")
    changed = client.post("/auth/password", json={"current_password": alice.password, "new_password": "new horse 12"},
                          headers=alice.headers)
    assert changed.status_code == 200, changed.get_json()
    fresh = changed.get_json()["access_token"]
    assert client.get("/auth/me", headers={"Authorization": f"Bearer {fresh}"}).status_code == 200
    for old in (alice.access_token, other.access_token):
        assert client.get("/auth/me", headers={"Authorization": f"Bearer {old}"}).status_code == 401
    assert client.post("/auth/refresh", headers={"Authorization": f"Bearer {other.refresh_token}"}).status_code == 401
    assert client.get("/auth/me", headers={"Authorization": f"Bearer {key}"}).status_code == 200  # keys are no logins
    assert_error(login(client, alice.username, alice.password), 401, "INVALID_CREDENTIALS")
    assert login(client, alice.username, "new horse 12").status_code == 200


def test_a_browser_changing_its_password_stays_logged_in(client, users):
    alice = users.register()
    assert client.post("/auth/session", json={"username": alice.username, "password": alice.password}).status_code == 200
    csrf = client.get_cookie("docchat_csrf").value
    changed = client.post("/auth/password", json={"current_password": alice.password, "new_password": "new horse 12"},
                          headers={"X-CSRF-TOKEN": csrf})
    assert changed.status_code == 200 and changed.get_json()["access_token"] is None
    assert any("docchat_access=" in header for header in changed.headers.getlist("Set-Cookie"))
    assert client.get("/auth/me").status_code == 200  # the new cookie
    assert users.login(alice.username, "new horse 12").access_token


def test_admins_list_and_search_users_with_a_total(client, users):
    admin = users.admin()
    for name in ("findme1", "findme2", "other3"):
        users.register(name)
    page = client.get("/admin/users?q=FINDME&per_page=1", headers=admin.headers).get_json()
    assert page["total"] == 2 and [user["username"] for user in page["users"]] == ["findme1"]
    second = client.get("/admin/users?q=findme&per_page=1&page=2", headers=admin.headers).get_json()
    assert [user["username"] for user in second["users"]] == ["findme2"]
    entry = second["users"][0]
    assert set(entry) == {"id", "username", "role", "disabled", "created_at", "last_login"}
    assert entry["disabled"] is False and entry["last_login"] is not None  # users.register logged in
    assert_error(client.get("/admin/users?per_page=0", headers=admin.headers), 400, "VALIDATION_ERROR")
    plain = users.register()
    assert_error(client.get("/admin/users", headers=plain.headers), 403, "FORBIDDEN")


def test_a_disabled_account_is_refused_with_every_credential(app, client, users):
    admin, bob = users.admin(), users.register()
    key = client.post("/auth/api-keys", json={"name": "k"}, headers=bob.headers).get_json()["key"]
    assert client.post("/auth/session", json={"username": bob.username, "password": bob.password}).status_code == 200
    target = admin_user(client, admin, bob.username)
    disabled = client.patch(f"/admin/users/{target['id']}", json={"disabled": True}, headers=admin.headers)
    assert disabled.status_code == 200 and disabled.get_json()["user"]["disabled"] is True
    basic = base64.b64encode(f"{bob.username}:{bob.password}".encode()).decode()
    other = app.test_client()
    for headers in ({"Authorization": f"Bearer {bob.access_token}"}, {"Authorization": f"Bearer {key}"},
                    {"Authorization": f"Basic {basic}"}):
        refused = other.get("/auth/me", headers=headers)
        assert refused.status_code == 401, headers
    assert client.get("/auth/me").status_code == 401  # the browser's cookie
    assert_error(other.get("/auth/me", headers={"Authorization": f"Bearer {key}"}), 401, "ACCOUNT_DISABLED")
    assert_error(login(other, bob.username, bob.password), 401, "ACCOUNT_DISABLED")
    assert_error(login(other, bob.username, "not the password"), 401, "INVALID_CREDENTIALS")  # no hint to guessers
    client.patch(f"/admin/users/{target['id']}", json={"disabled": False}, headers=admin.headers)
    assert other.get("/auth/me", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    assert login(other, bob.username, bob.password).status_code == 200


def test_a_reset_password_is_shown_once_and_must_be_changed_first(client, users):
    admin, carol = users.admin(), users.register()
    target = admin_user(client, admin, carol.username)
    reset = client.post(f"/admin/users/{target['id']}/password", headers=admin.headers)
    temporary = reset.get_json()["temporary_password"]
    assert reset.status_code == 200 and len(temporary) >= 12
    assert client.get("/auth/me", headers=carol.headers).status_code == 401  # her logins ended
    assert_error(login(client, carol.username, carol.password), 401, "INVALID_CREDENTIALS")
    tokens = login(client, carol.username, temporary).get_json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert client.get("/auth/me", headers=headers).status_code == 200
    assert_error(client.get("/documents", headers=headers), 403, "PASSWORD_CHANGE_REQUIRED")
    assert_error(client.post("/auth/api-keys", json={"name": "k"}, headers=headers), 403, "PASSWORD_CHANGE_REQUIRED")
    changed = client.post("/auth/password", json={"current_password": temporary, "new_password": "her own pass"},
                          headers=headers).get_json()
    assert client.get("/documents", headers={"Authorization": f"Bearer {changed['access_token']}"}).status_code == 200


def test_roles_change_at_once_and_the_last_admin_stays(client, users):
    admin, dave = users.admin(), users.register()
    promoted = client.patch(f"/admin/users/{admin_user(client, admin, dave.username)['id']}", json={"role": "admin"},
                            headers=admin.headers)
    assert promoted.get_json()["user"]["role"] == "admin"
    assert client.get("/admin/users", headers=dave.headers).status_code == 200  # the same token, now an admin
    own = admin_user(client, admin, admin.username)["id"]
    assert client.patch(f"/admin/users/{own}", json={"role": "user"}, headers=admin.headers).status_code == 200
    dave_id = admin_user(client, dave, dave.username)["id"]
    assert_error(client.patch(f"/admin/users/{dave_id}", json={"role": "user"}, headers=dave.headers), 409, "LAST_ADMIN")
    assert_error(client.patch(f"/admin/users/{dave_id}", json={"disabled": True}, headers=dave.headers),
                 409, "LAST_ADMIN")
    assert_error(client.patch(f"/admin/users/{dave_id}", json={"role": "root"}, headers=dave.headers),
                 400, "VALIDATION_ERROR")
    assert_error(client.patch("/admin/users/999999", json={"disabled": True}, headers=dave.headers), 404)
    assert_error(client.patch(f"/admin/users/{dave_id}", json={"role": "user"}, headers=admin.headers), 403)


def test_the_cli_lists_resets_and_disables(app, client, users):
    erin = users.register()
    runner = app.test_cli_runner()
    listed = runner.invoke(args=["users", "list"])
    assert listed.exit_code == 0 and erin.username in listed.output
    reset = runner.invoke(args=["users", "reset-password", erin.username])
    temporary = reset.output.strip().rsplit(" ", 1)[-1]
    assert reset.exit_code == 0 and login(client, erin.username, temporary).status_code == 200
    assert runner.invoke(args=["users", "disable", erin.username]).exit_code == 0
    assert_error(login(client, erin.username, temporary), 401, "ACCOUNT_DISABLED")
    assert "disabled" in runner.invoke(args=["users", "list", "--search", erin.username]).output
    assert runner.invoke(args=["users", "disable", "--enable", erin.username]).exit_code == 0
    assert login(client, erin.username, temporary).status_code == 200


def test_security_events_are_in_the_audit_log_with_who_what_and_where(client, users):
    admin, frank = users.admin(), users.register()
    assert login(client, frank.username, "a wrong password").status_code == 401
    key = client.post("/auth/api-keys", json={"name": "nightly"}, headers=frank.headers).get_json()
    client.delete(f"/auth/api-keys/{key['id']}", headers=frank.headers)
    client.post("/auth/password", json={"current_password": frank.password, "new_password": "frank new pw"},
                headers=frank.headers)
    frank_id = admin_user(client, admin, frank.username)["id"]
    client.patch(f"/admin/users/{frank_id}", json={"role": "admin"}, headers=admin.headers)
    client.patch(f"/admin/users/{frank_id}", json={"disabled": True}, headers=admin.headers)
    client.post(f"/admin/users/{frank_id}/password", headers=admin.headers)
    log = client.get(f"/admin/audit?user={frank.username}&per_page=200", headers=admin.headers).get_json()
    events = [event["event"] for event in log["events"]]
    assert log["total"] == len(events)
    assert {"login.succeeded", "login.failed", "api_key.created", "api_key.revoked", "password.changed"} <= set(events)
    failed = next(event for event in log["events"] if event["event"] == "login.failed")
    assert failed["address"] == "127.0.0.1" and failed["actor"] == frank.username and failed["at"].endswith("Z")
    by_admin = client.get(f"/admin/audit?user={admin.username}", headers=admin.headers).get_json()["events"]
    changes = {event["event"]: event for event in by_admin}
    assert changes["user.role_changed"]["target"] == frank.username
    assert changes["user.role_changed"]["details"] == {"from": "user", "to": "admin"}
    assert {"user.disabled", "password.reset"} <= set(changes)
    only = client.get("/admin/audit?event=login.failed", headers=admin.headers).get_json()
    assert only["total"] >= 1 and {event["event"] for event in only["events"]} == {"login.failed"}
    assert client.get("/admin/audit", headers=frank.headers).status_code in (401, 403)


def test_the_migrations_build_exactly_the_tables_the_models_describe(app):
    """Migration 0006 (accounts and the audit log) and every one before it, against the models."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from common.database import Base

    with app.extensions["docchat"].db.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
