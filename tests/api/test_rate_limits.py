"""Rate limits: per route from config, per user when authenticated, per address otherwise, Redis shared."""
from __future__ import annotations

import os
import time

import pytest
import redis

from tests.conftest import assert_error, redis_url

LOGIN = {"username": "nobody", "password": "wrong password"}


def _login_until_limited(client, limit: int, **kwargs):
    for _ in range(limit):
        assert client.post("/auth/login", json=LOGIN, **kwargs).status_code == 401
    return client.post("/auth/login", json=LOGIN, **kwargs)


def test_login_limit_answers_429_json_with_retry_after_and_headers(make_app):
    client = make_app(ratelimit_login="3 per minute").test_client()
    response = _login_until_limited(client, 3)
    body = assert_error(response, 429, "RATE_LIMITED")
    assert "3 per 1 minute" in body["error"]
    assert 1 <= int(response.headers["Retry-After"]) <= 61
    assert response.headers["X-RateLimit-Limit"] == "3"
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert int(response.headers["X-RateLimit-Reset"]) > time.time()


def test_success_answers_carry_ratelimit_headers_but_no_retry_after(make_app):
    client = make_app(ratelimit_login="3 per minute").test_client()
    response = client.post("/auth/login", json=LOGIN)
    assert response.headers["X-RateLimit-Remaining"] == "2"
    assert "Retry-After" not in response.headers


def test_authenticated_limits_are_per_user_not_per_address(make_app):
    app = make_app(ratelimit_default="4 per minute", ratelimit_login="100 per minute",
                   ratelimit_register="100 per minute")
    client = app.test_client()
    from tests.conftest import Users

    users = Users(app, client)
    alice, bob = users.register(), users.register()  # each login also called /auth/me once
    for _ in range(3):
        assert client.get("/auth/me", headers=alice.headers).status_code == 200
    assert_error(client.get("/auth/me", headers=alice.headers), 429, "RATE_LIMITED")
    assert client.get("/auth/me", headers=bob.headers).status_code == 200


def test_anonymous_limits_are_per_client_address(make_app):
    client = make_app(ratelimit_login="2 per minute").test_client()
    first = {"environ_base": {"REMOTE_ADDR": "10.0.0.1"}}
    second = {"environ_base": {"REMOTE_ADDR": "10.0.0.2"}}
    assert_error(_login_until_limited(client, 2, **first), 429)
    assert client.post("/auth/login", json=LOGIN, **second).status_code == 401


def test_forwarded_for_is_ignored_without_trusted_proxies(make_app):
    client = make_app(ratelimit_login="2 per minute").test_client()
    for spoof in ("1.1.1.1", "2.2.2.2"):
        client.post("/auth/login", json=LOGIN, headers={"X-Forwarded-For": spoof})
    response = client.post("/auth/login", json=LOGIN, headers={"X-Forwarded-For": "3.3.3.3"})
    assert_error(response, 429, "RATE_LIMITED")


def test_forwarded_for_is_trusted_with_configured_proxy_hops(make_app):
    client = make_app(ratelimit_login="2 per minute", trusted_proxy_hops=1).test_client()
    behind_proxy = {"headers": {"X-Forwarded-For": "203.0.113.7"}}
    assert_error(_login_until_limited(client, 2, **behind_proxy), 429)
    response = client.post("/auth/login", json=LOGIN, headers={"X-Forwarded-For": "203.0.113.8"})
    assert response.status_code == 401


@pytest.mark.redis
def test_redis_storage_shares_limits_between_workers(make_app):
    url = redis_url()
    settings = {"ratelimit_storage_uri": url, "ratelimit_login": "3 per minute", "ratelimit_key_prefix": f"t{os.getpid()}{time.time_ns()}"}
    worker_a = make_app(**settings).test_client()
    worker_b = make_app(**settings).test_client()
    assert worker_a.post("/auth/login", json=LOGIN).status_code == 401
    assert worker_b.post("/auth/login", json=LOGIN).status_code == 401
    assert worker_a.post("/auth/login", json=LOGIN).status_code == 401
    response = worker_b.post("/auth/login", json=LOGIN)
    assert_error(response, 429, "RATE_LIMITED")
    assert int(response.headers["Retry-After"]) >= 1
    keys = redis.Redis.from_url(url).keys("*" + settings["ratelimit_key_prefix"] + "*")
    assert keys, "the limiter wrote no key to Redis"


@pytest.mark.redis
def test_unreachable_redis_is_a_clear_503_not_a_500(make_app):
    redis_url()
    client = make_app(ratelimit_storage_uri="redis://127.0.0.1:1/0").test_client()
    response = client.post("/auth/login", json=LOGIN)
    assert_error(response, 503, "STORAGE_UNAVAILABLE")
    assert response.headers["Retry-After"] == "5"
