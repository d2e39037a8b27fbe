"""Every error is the JSON shape of API.md, never a stack trace; /stats/errors counts them for admins."""
from __future__ import annotations

import json

from tests.conftest import assert_error


def test_unknown_route_is_json_404(client):
    assert_error(client.get("/no/such/route"), 404, "NOT_FOUND")


def test_wrong_method_is_json_405_with_allow(client):
    response = client.get("/auth/login")
    assert_error(response, 405, "METHOD_NOT_ALLOWED")
    assert "POST" in response.headers["Allow"]


def test_malformed_json_is_400_naming_the_problem(client):
    response = client.post("/auth/login", data="{not json", content_type="application/json")
    body = assert_error(response, 400, "VALIDATION_ERROR")
    assert "JSON" in body["error"]
    body = assert_error(client.post("/auth/login", json=["a", "list"]), 400, "VALIDATION_ERROR")
    assert "object" in body["error"]


def test_wrong_types_are_400_naming_the_field(client):
    body = assert_error(client.post("/auth/login", json={"username": 12, "password": "x"}), 400, "VALIDATION_ERROR")
    assert body["details"]["fields"][0]["field"] == "username"


def test_too_large_body_is_json_413(make_app):
    client = make_app(max_upload_mb=1).test_client()
    big = json.dumps({"username": "a", "password": "x" * (2 * 1024 * 1024)})
    assert_error(client.post("/auth/login", data=big, content_type="application/json"), 413, "PAYLOAD_TOO_LARGE")


def test_unexpected_exception_is_500_json_without_internals(app, client):
    def explode():
        raise RuntimeError("postgres://admin:hunter2@db/secret")

    app.add_url_rule("/explode", view_func=explode)
    response = client.get("/explode", headers={"X-Request-ID": "req-123"})
    body = assert_error(response, 500, "INTERNAL_ERROR")
    assert "hunter2" not in response.get_data(as_text=True)
    assert body["details"]["request_id"] == "req-123"


def test_error_stats_are_admin_only_and_count_by_code(client, users):
    admin, user = users.admin(), users.register()
    client.get("/missing")
    client.get("/missing-too")
    client.post("/auth/login", json={"username": "ghost", "password": "pw-in-the-body-42"})
    assert_error(client.get("/stats/errors", headers=user.headers), 403, "FORBIDDEN")
    assert_error(client.get("/stats/errors"), 401, "UNAUTHORIZED")
    response = client.get("/stats/errors", headers=admin.headers)
    assert response.status_code == 200
    stats = response.get_json()
    assert stats["error_types"]["NOT_FOUND"] == 2
    assert stats["error_types"]["INVALID_CREDENTIALS"] == 1
    assert stats["error_types"]["FORBIDDEN"] == 1 and stats["error_types"]["UNAUTHORIZED"] == 1
    assert stats["total_errors"] == sum(stats["error_types"].values()) == 5
    newest = stats["recent"][0]
    assert newest["route"] == "/stats/errors" and newest["code"] == "UNAUTHORIZED" and newest["status"] == 401
    assert set(newest) == {"time", "method", "route", "status", "code", "message"}
    text = response.get_data(as_text=True)
    assert "pw-in-the-body-42" not in text and user.access_token not in text


def test_error_stats_routes_are_templates_not_raw_paths(client, users):
    admin, user = users.admin(), users.register()
    client.delete("/auth/api-keys/98765", headers=user.headers)
    recent = client.get("/stats/errors", headers=admin.headers).get_json()["recent"]
    assert recent[0]["route"].startswith("/auth/api-keys/<int") and recent[0]["route"].endswith(":key_id>")
    assert recent[0]["code"] == "NOT_FOUND" and "98765" not in recent[0]["route"]
