"""Schemathesis against /openapi.json, authenticated: no 500 on any input, invalid data rejected
with a 4xx, and no route that declares auth answers without it. Bounded examples per operation."""
from __future__ import annotations

from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed (make test installs it)")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import ignored_auth, negative_data_rejection  # noqa: E402

EXAMPLES = 30
LIMITS = {f"ratelimit_{name}": "100000 per minute"
          for name in ("default", "login", "register", "refresh", "api_keys", "upload", "chat")}


@pytest.fixture
def fuzz_app(make_app: Any) -> Any:
    return make_app(**LIMITS)


def _token(app: Any) -> str:
    client = app.test_client()
    client.post("/auth/register", json={"username": "fuzzer", "password": "correct horse battery"})
    return client.post("/auth/login", json={"username": "fuzzer", "password": "correct horse battery"}).get_json()[
        "access_token"]


def no_internal_error(ctx: Any, response: Any, case: Any) -> bool | None:
    """Designed 503s (model not loaded) are answers; a 500 is a bug. Every JSON error has the API's shape."""
    if response.status_code == 500:
        raise AssertionError(f"500 on {case.method} {case.path}: {response.text[:300]}")
    if response.status_code >= 400 and "json" in str(response.headers.get("Content-Type", "")):
        assert "error" in response.json(), response.text[:300]
    return None


def rejected(ctx: Any, response: Any, case: Any) -> bool | None:
    """Invalid data is rejected: schemathesis's check, plus 413 for a body over MAX_JSON_KB, which
    is refused before it is read (and so before it could be validated)."""
    if response.status_code == 413:
        return None
    return negative_data_rejection(ctx, response, case)


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_no_input_breaks_the_api(fuzz_app: Any, mode: str) -> None:
    schema = schemathesis.openapi.from_wsgi("/openapi.json", fuzz_app)
    headers = {"Authorization": f"Bearer {_token(fuzz_app)}"}
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path in ("/auth/logout", "/auth/session"):
            continue  # would revoke the fuzzer's own login; covered by the auth tests

        @given(case=operation.as_strategy(generation_mode=GenerationMode(mode)))
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                  database=None)
        def run(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=[no_internal_error, rejected, ignored_auth])

        try:
            run()
        except Unsatisfiable:
            continue  # no parameters to make invalid (negative mode on GET /health, for instance)
        except Exception as exc:  # noqa: BLE001 - collect every operation's failure, then report them all
            failures.append(f"{operation.label}: {str(exc)[:600]}")
    assert not failures, "\n\n".join(failures)
