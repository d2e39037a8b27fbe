"""Health, Prometheus metrics, security headers and the OpenAPI document."""
from __future__ import annotations

import re

from api.validation import document
from auth.schemas import RegisterRequest
from tests.conftest import assert_error


def test_health_is_503_until_a_model_is_loaded_and_reports_the_state(client):
    response = client.get("/health")
    body = assert_error(response, 503, "MODEL_NOT_READY")
    assert response.headers["Retry-After"] == "10"
    assert body["model_loaded"] is False and body["model"] == "smollm2-135m-instruct"
    assert body["device"] in ("cpu", "cuda") and body["queue_depth"] == 0
    assert body["status"] == "ok" and body["problems"] == [] and body["uptime_s"] >= 0
    assert "gpu" in body


def test_health_reports_a_broken_database_as_degraded(app, client):
    services = app.extensions["docchat"]

    class Broken:
        def ping(self) -> None:
            raise OSError("disk gone")

    services.health._database = Broken()
    body = client.get("/health").get_json()
    assert body["status"] == "degraded" and "database unreachable" in body["problems"][0]


def test_health_is_not_rate_limited(make_app):
    client = make_app(ratelimit_default="2 per minute").test_client()
    assert {client.get("/health").status_code for _ in range(5)} == {503}


def test_metrics_are_prometheus_text_for_the_local_network(client):
    client.get("/no-such-page")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    text = response.get_data(as_text=True)
    assert 'docchat_errors_total{code="NOT_FOUND"} 1.0' in text
    assert 'docchat_http_requests_total{method="GET",route="<unmatched>",status="404"} 1.0' in text
    assert "docchat_ram_used_bytes" in text and "process_resident_memory_bytes" in text


def test_metrics_are_refused_to_outside_addresses(client):
    response = client.get("/metrics", environ_base={"REMOTE_ADDR": "8.8.8.8"})
    assert_error(response, 403, "FORBIDDEN")


def test_security_headers_on_every_answer(client):
    for response in (client.get("/"), client.get("/nope"), client.post("/auth/login", json={})):
        headers = response.headers
        assert "default-src 'self'" in headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"


def test_landing_page_names_the_api_document(client):
    response = client.get("/")
    assert response.status_code == 200 and b"/openapi.json" in response.data


def test_openapi_describes_every_route_that_exists(app, client):
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method.lower()) in documented, (path, method)
    assert ("/auth/login", "post") in documented and ("/login", "post") in documented


def test_openapi_request_schemas_are_the_validating_models(client):
    spec = client.get("/openapi.json").get_json()
    register = spec["paths"]["/auth/register"]["post"]
    ref = register["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert schema == RegisterRequest.model_json_schema()
    assert schema["properties"]["password"]["minLength"] == 8
    assert "201" in register["responses"] and "default" in register["responses"]
    assert spec["paths"]["/auth/me"]["get"]["security"] == [{"bearerAuth": []}, {"basicAuth": []}]
    assert spec["paths"]["/auth/login"]["post"]["security"] == []


def test_openapi_document_merges_facts():
    def view():
        return None

    document(view, responses={200: (None, "ok")})
    document(view, responses={404: (None, "missing")}, auth="bearer")
    assert set(view.openapi["responses"]) == {200, 404} and view.openapi["auth"] == "bearer"


def test_answers_match_their_documented_schemas(client, users):
    from auth.schemas import TokenPair, UserOut
    from monitoring.schemas import ErrorStatsOut, HealthOut

    admin = users.admin()
    client.get("/missing")
    HealthOut.model_validate(client.get("/health").get_json())
    ErrorStatsOut.model_validate(client.get("/stats/errors", headers=admin.headers).get_json())
    UserOut.model_validate(client.get("/auth/me", headers=admin.headers).get_json())
    TokenPair.model_validate(client.post("/auth/login", json={"username": admin.username,
                                                              "password": admin.password}).get_json())
