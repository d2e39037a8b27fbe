"""Abuse and fuzz regressions from the security review (issue 14): each test attacks the server the
way the review did and asserts what the attacker must not get."""
from __future__ import annotations

import base64
import json
from concurrent.futures import ThreadPoolExecutor

from tests.conftest import assert_error

PASSWORD = "correct horse battery"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _basic(username: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{secret}".encode()).decode()}


# --- 1: a deleted account's logins never work again, and never for somebody else ----------------

def _browser(app, username: str, password: str = PASSWORD):
    browser = app.test_client()
    assert browser.post("/auth/session", json={"username": username, "password": password}).status_code == 200
    return browser


def test_a_deleted_users_logins_do_not_sign_in_the_next_account(app, client, users):
    users.register("alice")
    gina = users.register("gina")  # the highest id: SQLite without AUTOINCREMENT gives it out again
    key = client.post("/auth/api-keys", json={"name": "script"}, headers=gina.headers).get_json()["key"]
    browser = _browser(app, "gina")
    assert app.test_cli_runner().invoke(args=["users", "delete", "gina", "--yes"]).exit_code == 0

    henry = users.register("henry")
    assert henry.id > gina.id  # ids are never reused
    assert_error(client.get("/auth/me", headers=gina.headers), 401)
    assert_error(client.post("/auth/refresh", headers=_bearer(gina.refresh_token)), 401)
    assert_error(client.get("/auth/me", headers=_bearer(key)), 401)
    assert_error(browser.get("/auth/me"), 401)
    assert client.get("/auth/me", headers=henry.headers).get_json()["username"] == "henry"


def test_tokens_name_their_account_even_where_an_id_comes_back(app, client, users):
    """A restored backup or a reset sequence could give an old id out again: the token's account
    key still tells the two accounts apart."""
    from auth.models import User

    gina = users.register("gina")
    assert app.test_cli_runner().invoke(args=["users", "delete", "gina", "--yes"]).exit_code == 0
    with app.extensions["docchat"].db.session() as session:
        session.add(User(id=gina.id, username="ivan", password_hash="x", role="admin"))
    assert_error(client.get("/auth/me", headers=gina.headers), 401, "INVALID_TOKEN")
    assert_error(client.post("/auth/refresh", headers=_bearer(gina.refresh_token)), 401, "INVALID_TOKEN")


def test_upgrading_an_old_database_keeps_every_row_and_stops_reusing_ids(tmp_path):
    """Migration 0005 rebuilds the users table on SQLite; rows that reference users survive it."""
    from alembic import command
    from sqlalchemy import text

    from common.database import Database, alembic_config

    db = Database(f"sqlite:///{tmp_path / 'old.db'}")
    with db.engine.begin() as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "0004")
        for user_id, name in ((1, "ann"), (2, "bob")):
            connection.execute(text("INSERT INTO users (id, username, password_hash, role, created_at) "
                                    "VALUES (:id, :name, 'h', 'user', '2026-11-01 00:00:00')"),
                               {"id": user_id, "name": name})
        connection.execute(text("INSERT INTO api_keys (user_id, name, prefix, key_hash, created_at) "
                                "VALUES (2, 'k', 'dck_x', 'abc', '2026-11-01 00:00:00')"))
    db.migrate()
    with db.engine.begin() as connection:
        assert connection.execute(text("SELECT count(*) FROM api_keys WHERE user_id = 2")).scalar() == 1
        keys = connection.execute(text("SELECT token_key FROM users ORDER BY id")).scalars().all()
        assert len(keys) == 2 and len(set(keys)) == 2 and all(len(key) == 32 for key in keys)
        connection.execute(text("DELETE FROM users WHERE id = 2"))
        connection.execute(text("INSERT INTO users (username, password_hash, role, created_at, token_key) "
                                "VALUES ('cy', 'h', 'user', '2026-11-01 00:00:00', 'k')"))
        assert connection.execute(text("SELECT id FROM users WHERE username = 'cy'")).scalar() == 3
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1  # back on after migrating
    db.close()


# --- 8: one failure budget per account and address, taken before the hash ----------------------

def test_parallel_guesses_over_every_login_path_get_one_budget(make_app):
    app = make_app(ratelimit_login="10 per minute", ratelimit_register="100 per minute")
    from tests.conftest import Users

    victim = Users(app, app.test_client()).register()
    wrong = {"username": victim.username, "password": "not the password"}

    def guess(attempt: int) -> int:
        client = app.test_client()
        path = attempt % 3
        if path == 0:
            return client.post("/auth/login", json=wrong).status_code
        if path == 1:
            return client.post("/auth/session", json=wrong).status_code
        return client.get("/auth/me", headers=_basic(victim.username, "not the password")).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(guess, range(36)))
    assert statuses.count(401) <= 10, statuses  # at most 10 guesses were checked against the hash
    assert statuses.count(429) >= 26, statuses
    right = {"username": victim.username, "password": victim.password}
    assert_error(app.test_client().post("/auth/login", json=right), 429, "RATE_LIMITED")
    elsewhere = app.test_client().post("/auth/login", json=right, environ_base={"REMOTE_ADDR": "10.9.8.7"})
    assert elsewhere.status_code == 200  # the account is not locked for its owner on another address


def test_a_script_with_the_right_password_is_never_locked_out(make_app):
    app = make_app(ratelimit_login="3 per minute", ratelimit_register="100 per minute")
    from tests.conftest import Users

    client = app.test_client()
    alice = Users(app, client).register()
    for _ in range(8):
        assert client.get("/auth/me", headers=_basic(alice.username, alice.password)).status_code == 200


# --- 9 and 10: JSON only by its Content-Type, and no nesting that breaks the parser -------------

def test_a_cross_site_form_cannot_log_a_browser_in(client, users):
    users.register("mallory")
    body = json.dumps({"username": "mallory", "password": PASSWORD})
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        response = client.post("/auth/session", data=body, content_type=content_type)
        assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE")
        assert "Set-Cookie" not in response.headers


def test_deeply_nested_json_is_400(client, users):
    alice = users.register()
    assert_error(client.post("/search", data="[" * 100_000, content_type="application/json", headers=alice.headers),
                 400, "VALIDATION_ERROR")
    nested: object = []
    for _ in range(40):
        nested = [nested]  # an ignored field, but still past the depth the API takes
    body = assert_error(client.post("/search", json={"query": "x", "k": 3, "note": nested}, headers=alice.headers),
                        400, "VALIDATION_ERROR")
    assert "deeper than 32" in body["error"]


def test_json_bodies_are_bounded_before_authentication(make_app):
    client = make_app(max_json_kb=64).test_client()
    big = json.dumps({"username": "a", "password": "x" * 100_000})
    body = assert_error(client.post("/auth/login", data=big, content_type="application/json"), 413, "PAYLOAD_TOO_LARGE")
    assert body["details"]["limit_bytes"] == 64 * 1024
    anonymous = client.post("/v1/chat/completions", data=big, content_type="application/json")
    assert anonymous.status_code == 413  # refused before anyone is asked who they are (OpenAI's envelope)
    assert anonymous.get_json()["error"]["code"] == "payload_too_large"
