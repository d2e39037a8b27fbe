"""Auth through the real HTTP app: register, login, tokens, revocation, roles, API keys, the CLI."""
from __future__ import annotations

import base64
import json
from datetime import timedelta

from flask_jwt_extended import create_access_token
from sqlalchemy import select

from auth.models import ApiKey, User
from tests.conftest import assert_error


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- registration -------------------------------------------------------------------------

def test_register_answers_the_new_user_with_role_user(client):
    response = client.post("/auth/register", json={"username": "Alice", "password": "long enough pw"})
    assert response.status_code == 201
    user = response.get_json()["user"]
    assert user["username"] == "alice" and user["role"] == "user" and isinstance(user["id"], int)


def test_role_sent_at_registration_is_ignored(client, users):
    response = client.post("/auth/register", json={"username": "mallory", "password": "long enough pw", "role": "admin"})
    assert response.status_code == 201
    assert response.get_json()["user"]["role"] == "user"
    mallory = users.login("mallory", "long enough pw")
    assert client.get("/auth/me", headers=mallory.headers).get_json()["role"] == "user"
    assert_error(client.get("/stats/errors", headers=mallory.headers), 403, "FORBIDDEN")


def test_taken_username_is_409_whatever_the_case(client, users):
    users.register("bob")
    assert_error(client.post("/auth/register", json={"username": "BOB", "password": "another pw 123"}), 409,
                 "USERNAME_TAKEN")


def test_validation_errors_name_the_field(client):
    body = assert_error(client.post("/auth/register", json={"username": "ok_name", "password": "short"}), 400,
                        "VALIDATION_ERROR")
    assert [f["field"] for f in body["details"]["fields"]] == ["password"]
    assert "password" in body["error"]
    body = assert_error(client.post("/auth/register", json={"password": "long enough pw"}), 400, "VALIDATION_ERROR")
    assert [f["field"] for f in body["details"]["fields"]] == ["username"]
    body = assert_error(client.post("/auth/register", json={"username": "../etc", "password": "long enough pw"}), 400)
    assert body["details"]["fields"][0]["field"] == "username"


def test_registration_closed_is_403(make_app):
    client = make_app(allow_registration=False).test_client()
    assert_error(client.post("/auth/register", json={"username": "carol", "password": "long enough pw"}), 403,
                 "REGISTRATION_CLOSED")


def test_passwords_are_stored_with_argon2(app, users):
    account = users.register("dave", password="my secret password")
    with app.extensions["docchat"].db.session() as session:
        stored = session.scalar(select(User.password_hash).where(User.id == account.id))
    assert stored.startswith("$argon2id$") and "my secret password" not in stored


# --- login, me, refresh ------------------------------------------------------------------

def test_login_answers_tokens_and_me_answers_the_user(client, users):
    users.register("erin", password="erin password")
    for path in ("/auth/login", "/login"):
        response = client.post(path, json={"username": "Erin", "password": "erin password"})
        assert response.status_code == 200
        body = response.get_json()
        assert body["token_type"] == "Bearer" and body["expires_in"] == 15 * 60
        me = client.get("/auth/me", headers=_bearer(body["access_token"]))
        assert me.status_code == 200 and me.get_json()["username"] == "erin"


def test_wrong_password_and_unknown_user_get_the_same_401(client, users):
    users.register("frank", password="frank password")
    wrong = assert_error(client.post("/auth/login", json={"username": "frank", "password": "nope nope"}), 401,
                         "INVALID_CREDENTIALS")
    unknown = assert_error(client.post("/auth/login", json={"username": "nobody", "password": "nope nope"}), 401,
                           "INVALID_CREDENTIALS")
    assert wrong == unknown


def test_refresh_gives_a_working_access_token(client, users):
    account = users.register()
    response = client.post("/auth/refresh", headers=_bearer(account.refresh_token))
    assert response.status_code == 200
    assert client.get("/auth/me", headers=_bearer(response.get_json()["access_token"])).status_code == 200


def test_access_token_is_refused_at_refresh(client, users):
    account = users.register()
    assert_error(client.post("/auth/refresh", headers=_bearer(account.access_token)), 401, "INVALID_TOKEN")


# --- bad tokens ---------------------------------------------------------------------------

def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_alg_none_token_is_401(client, users):
    account = users.register()
    claims = json.loads(base64.urlsafe_b64decode(account.access_token.split(".")[1] + "=="))
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    assert_error(client.get("/auth/me", headers=_bearer(unsigned)), 401, "INVALID_TOKEN")


def test_forged_signature_is_401(client, users):
    account = users.register()
    header, payload, _signature = account.access_token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    forged = f"{header}.{_b64({**claims, 'sub': '1'})}.{_signature}"
    assert_error(client.get("/auth/me", headers=_bearer(forged)), 401, "INVALID_TOKEN")


def test_token_signed_with_another_secret_is_401(make_app, users):
    account = users.register()
    other = make_app(jwt_secret_key="another-secret-" + "x1y2z3" * 8)
    with other.app_context():
        foreign = create_access_token(identity=str(account.id), additional_claims={"lid": "abc"})
    assert_error(users.client.get("/auth/me", headers=_bearer(foreign)), 401, "INVALID_TOKEN")


def test_expired_token_is_401(app, client, users):
    account = users.register()
    with app.app_context():
        expired = create_access_token(identity=str(account.id), additional_claims={"lid": "x" * 32},
                                      expires_delta=timedelta(seconds=-5))
    assert_error(client.get("/auth/me", headers=_bearer(expired)), 401, "TOKEN_EXPIRED")


def test_refresh_token_used_as_access_is_401(client, users):
    account = users.register()
    assert_error(client.get("/auth/me", headers=_bearer(account.refresh_token)), 401, "INVALID_TOKEN")


def test_garbage_and_missing_credentials_are_401(client):
    for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Bearer not.a.jwt"},
                    {"Authorization": "Token abc"}, {"Authorization": "Bearer " + "a" * 5000}):
        assert_error(client.get("/auth/me", headers=headers), 401)


# --- logout and revocation -----------------------------------------------------------------

def test_logout_revokes_access_and_refresh_tokens(client, users):
    account = users.register()
    other_login = users.login(account.username, account.password)
    assert client.post("/auth/logout", headers=account.headers).status_code == 200
    assert_error(client.get("/auth/me", headers=account.headers), 401, "TOKEN_REVOKED")
    assert_error(client.post("/auth/refresh", headers=_bearer(account.refresh_token)), 401, "TOKEN_REVOKED")
    assert client.get("/auth/me", headers=other_login.headers).status_code == 200  # other logins live on


def test_revocation_survives_a_restart(make_app, users):
    logged_out = users.register()
    still_in = users.login(logged_out.username, logged_out.password)
    assert users.client.post("/auth/logout", headers=logged_out.headers).status_code == 200
    restarted = make_app().test_client()
    assert_error(restarted.get("/auth/me", headers=logged_out.headers), 401, "TOKEN_REVOKED")
    assert restarted.get("/auth/me", headers=still_in.headers).status_code == 200


# --- roles are read fresh -----------------------------------------------------------------

def test_demoted_admin_loses_admin_routes_at_once(app, client, users):
    admin = users.admin("root_admin")
    assert client.get("/stats/errors", headers=admin.headers).status_code == 200
    refused = app.test_cli_runner().invoke(args=["users", "set-role", "root_admin", "user"])
    assert refused.exit_code != 0 and "last enabled admin" in refused.output  # the server keeps an admin
    users.admin("second_admin")
    result = app.test_cli_runner().invoke(args=["users", "set-role", "root_admin", "user"])
    assert result.exit_code == 0, result.output
    assert_error(client.get("/stats/errors", headers=admin.headers), 403, "FORBIDDEN")
    assert client.get("/auth/me", headers=admin.headers).get_json()["role"] == "user"


def test_deleted_user_tokens_and_keys_stop_working(app, client, users):
    account = users.register("gina")
    key = client.post("/auth/api-keys", json={"name": "script"}, headers=account.headers).get_json()["key"]
    result = app.test_cli_runner().invoke(args=["users", "delete", "gina", "--yes"])
    assert result.exit_code == 0, result.output
    assert_error(client.get("/auth/me", headers=account.headers), 401, "INVALID_TOKEN")
    assert_error(client.post("/auth/refresh", headers=_bearer(account.refresh_token)), 401, "INVALID_TOKEN")
    assert_error(client.get("/auth/me", headers=_bearer(key)), 401, "INVALID_TOKEN")


# --- API keys -----------------------------------------------------------------------------

def test_api_key_is_shown_once_stored_hashed_and_works_as_bearer(app, client, users):
    account = users.register()
    created = client.post("/auth/api-keys", json={"name": "backup script"}, headers=account.headers)
    assert created.status_code == 201
    body = created.get_json()
    assert body["name"] == "backup script" and body["key"].startswith("dck_")
    me = client.get("/auth/me", headers=_bearer(body["key"]))
    assert me.status_code == 200 and me.get_json()["id"] == account.id
    listed = client.get("/auth/api-keys", headers=account.headers).get_json()["api_keys"]
    assert [k["id"] for k in listed] == [body["id"]] and "key" not in listed[0]
    assert body["key"].startswith(listed[0]["prefix"]) and listed[0]["last_used_at"]
    with app.extensions["docchat"].db.session() as session:
        stored = session.scalars(select(ApiKey)).all()
    assert [row.key_hash for row in stored] != [body["key"]] and body["key"] not in repr(
        [(r.key_hash, r.prefix, r.name) for r in stored])


def test_deleted_api_key_stops_working_and_others_cannot_delete_it(client, users):
    owner, stranger = users.register(), users.register()
    body = client.post("/auth/api-keys", json={"name": "k"}, headers=owner.headers).get_json()
    assert_error(client.delete(f"/auth/api-keys/{body['id']}", headers=stranger.headers), 404, "NOT_FOUND")
    assert client.get("/auth/me", headers=_bearer(body["key"])).status_code == 200
    assert client.delete(f"/auth/api-keys/{body['id']}", headers=owner.headers).status_code == 204
    assert_error(client.get("/auth/me", headers=_bearer(body["key"])), 401, "INVALID_TOKEN")


def test_unknown_api_key_is_401(client):
    assert_error(client.get("/auth/me", headers=_bearer("dck_" + "x" * 43)), 401, "INVALID_TOKEN")


def test_api_key_cannot_log_out(client, users):
    account = users.register()
    key = client.post("/auth/api-keys", json={"name": "k"}, headers=account.headers).get_json()["key"]
    assert_error(client.post("/auth/logout", headers=_bearer(key)), 400, "VALIDATION_ERROR")


# --- CLI ------------------------------------------------------------------------------------

def test_cli_create_admin_makes_an_admin_who_can_log_in(app, users):
    result = app.test_cli_runner().invoke(args=["users", "create-admin", "boss", "--generate"])
    assert result.exit_code == 0, result.output
    password = result.output.split("password: ")[1].strip()
    boss = users.login("boss", password)
    assert users.client.get("/auth/me", headers=boss.headers).get_json()["role"] == "admin"


def test_cli_create_admin_refuses_a_taken_name(app, users):
    users.register("taken")
    result = app.test_cli_runner().invoke(args=["users", "create-admin", "taken", "--password", "whatever123"])
    assert result.exit_code != 0 and "already taken" in result.output


def _basic(username: str, secret: str) -> dict[str, str]:
    import base64

    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{secret}".encode()).decode()}


def test_http_basic_with_a_password_or_an_api_key(client, users):
    alice, bob = users.register(), users.register()
    me = client.get("/auth/me", headers=_basic(alice.username, alice.password))
    assert me.status_code == 200 and me.get_json()["username"] == alice.username
    key = client.post("/auth/api-keys", json={"name": "basic"}, headers=alice.headers).get_json()["key"]
    assert client.get("/auth/me", headers=_basic(alice.username, key)).get_json()["id"] == alice.id
    assert_error(client.get("/auth/me", headers=_basic(bob.username, key)), 401, "INVALID_CREDENTIALS")  # not his key
    assert_error(client.get("/auth/me", headers=_basic(alice.username, "wrong password")), 401, "INVALID_CREDENTIALS")
    assert_error(client.get("/auth/me", headers={"Authorization": "Basic %%%"}), 401)


def test_http_basic_guesses_count_against_the_login_limit(make_app):
    app = make_app(ratelimit_login="3 per minute", ratelimit_register="100 per minute")
    client = app.test_client()
    from tests.conftest import Users

    alice = Users(app, client).register()
    for _ in range(3):
        assert_error(client.get("/auth/me", headers=_basic(alice.username, "guess")), 401)
    locked = client.get("/auth/me", headers=_basic(alice.username, alice.password))  # even the right one, now
    assert_error(locked, 429, "RATE_LIMITED")
    assert int(locked.headers["Retry-After"]) >= 1
    assert client.get("/auth/me", headers=alice.headers).status_code == 200  # tokens are not locked out
