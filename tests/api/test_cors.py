"""CORS for browser clients on other origins: off by default, named origins only, and credentials
never with the wildcard."""
from __future__ import annotations

import pytest

from config import ConfigError
from tests.conftest import Users

APP_ORIGIN = "https://notes.example.org"


def _preflight(client, origin: str):
    return client.options("/chat/start", headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                                                  "Access-Control-Request-Headers": "Authorization, Content-Type"})


def test_no_origin_is_allowed_by_default(client, users):
    account = users.register()
    assert "Access-Control-Allow-Origin" not in _preflight(client, APP_ORIGIN).headers
    answer = client.get("/auth/me", headers={**account.headers, "Origin": APP_ORIGIN})
    assert answer.status_code == 200 and "Access-Control-Allow-Origin" not in answer.headers


def test_named_origins_may_call_with_credentials_and_others_may_not(make_app):
    app = make_app(cors_origins=(APP_ORIGIN, "http://localhost:3000"))
    client = app.test_client()
    preflight = _preflight(client, APP_ORIGIN)
    assert preflight.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    assert preflight.headers["Access-Control-Allow-Credentials"] == "true"
    assert "authorization" in preflight.headers["Access-Control-Allow-Headers"].lower()
    account = Users(app, client).register()
    answer = client.get("/auth/me", headers={**account.headers, "Origin": APP_ORIGIN})
    assert answer.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    assert "X-Request-ID" in answer.headers["Access-Control-Expose-Headers"]
    stranger = client.get("/auth/me", headers={**account.headers, "Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in stranger.headers


def test_the_wildcard_never_carries_credentials(make_app):
    client = make_app(cors_origins=("*",)).test_client()
    preflight = _preflight(client, "https://anyone.example")
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in preflight.headers


@pytest.mark.parametrize("origins", [("*", APP_ORIGIN), ("notes.example.org",), ("https://x.example/path",)])
def test_malformed_origin_lists_are_refused_at_start(make_app, origins):
    with pytest.raises(ConfigError):
        make_app(cors_origins=origins)


def test_cors_origins_come_from_the_environment():
    from config import Config

    config = Config.from_env({"CORS_ORIGINS": f"{APP_ORIGIN}, http://localhost:3000"})
    assert config.cors_origins == (APP_ORIGIN, "http://localhost:3000")
