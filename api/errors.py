"""The one error shape of API.md: {"error", "code", "details"?}, counted for /stats/errors."""
from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request

from api.context import services


def error_response(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    extra_fields: dict[str, Any] | None = None,
) -> Response:
    """Build the JSON error every route answers with, and record it. `extra_fields` lets a route
    answer with its usual body plus the error keys (e.g. /health's report on a 503)."""
    rule = request.url_rule.rule if request.url_rule is not None else request.path
    stats = services()
    stats.error_stats.record(method=request.method, route=rule, status=status, code=code, message=message)
    stats.metrics.observe_error(code)
    body: dict[str, Any] = {**(extra_fields or {}), "error": message, "code": code}
    if details:
        body["details"] = details
    response = jsonify(body)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response
