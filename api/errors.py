"""The one error shape of API.md: {"error", "code", "details"?}, counted for /stats/errors.

Routes under /v1 (the OpenAI-compatible API) answer the same errors in OpenAI's envelope,
{"error": {"message", "type", "param", "code"}}, which OpenAI's clients turn into their exceptions.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Response, current_app, g, jsonify, request

from common.context import ERROR_TABLE_KEY, services
from common.errors import DomainError

log = logging.getLogger(__name__)

ErrorTable = Mapping[type[DomainError], tuple[int, str]]  # exception -> (HTTP status, code); error_table.py

# Errors Flask or an extension raises itself -> code.
HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "UNPROCESSABLE",
    429: "RATE_LIMITED",
    503: "SERVICE_UNAVAILABLE",
}


def status_and_code(exc: DomainError) -> tuple[int, str]:
    """The HTTP status and error code of a domain exception, looked up along its class's MRO in
    the app's error table."""
    table: ErrorTable = current_app.extensions[ERROR_TABLE_KEY]
    for klass in type(exc).__mro__:
        if klass in table:
            return table[klass]
    return 500, "INTERNAL_ERROR"


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
    _count(status, code, message)
    if request.path.startswith(OPENAI_PREFIX):
        response = jsonify(error=openai_error(status, code, message, details))
    else:
        body: dict[str, Any] = {**(extra_fields or {}), "error": message, "code": code}
        if details:
            body["details"] = details
        response = jsonify(body)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


OPENAI_PREFIX = "/v1/"
_OPENAI_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                 404: "not_found_error", 409: "invalid_request_error", 413: "invalid_request_error",
                 415: "invalid_request_error", 422: "invalid_request_error", 429: "rate_limit_error"}
_OPENAI_CODES = {"MODEL_NOT_FOUND": "model_not_found", "RATE_LIMITED": "rate_limit_exceeded",
                 "INVALID_TOKEN": "invalid_api_key", "UNAUTHORIZED": "invalid_api_key"}


def openai_error(status: int, code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """The body of OpenAI's error envelope for one of this server's errors."""
    fields = (details or {}).get("fields") or []
    kind = fields[0].get("type") if fields else None
    return {
        "message": message,
        "type": _OPENAI_TYPES.get(status, "server_error"),
        "param": fields[0].get("field") if fields else None,
        "code": kind if kind == "context_length_exceeded" else _OPENAI_CODES.get(code, code.lower()),
    }


def stream_error(exc: Exception) -> dict[str, Any]:
    """An error after a stream began: counted like any other, returned as its event's body
    (API.md's shape, or OpenAI's under /v1)."""
    if isinstance(exc, DomainError):
        (status, code), message, details = status_and_code(exc), exc.message, exc.details
    else:
        log.error("stream failed on %s (request %s)", request.path, g.get("request_id"), exc_info=exc)
        status, code = 500, "INTERNAL_ERROR"
        message, details = "An internal error occurred; it has been logged", {"request_id": g.get("request_id")}
    _count(status, code, message)
    if request.path.startswith(OPENAI_PREFIX):
        return openai_error(status, code, message, details)
    return {"error": message, "code": code, **({"details": details} if details else {})}


def _count(status: int, code: str, message: str) -> None:
    rule = request.url_rule.rule if request.url_rule is not None else request.path
    stats = services()
    stats.error_stats.record(method=request.method, route=rule, status=status, code=code, message=message)
    stats.metrics.observe_error(code)
