"""Request bodies validated by pydantic models; the same models feed /openapi.json."""
from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, TypeVar

from flask import request
from pydantic import BaseModel, ValidationError

from common.errors import UnsupportedMediaType, ValidationFailed

ModelT = TypeVar("ModelT", bound=BaseModel)
View = Callable[..., Any]


MAX_JSON_DEPTH = 32  # no request body of this API nests deeper than a few levels


def parse_body(model: type[ModelT]) -> ModelT:
    """The request's JSON body as `model`, or ValidationFailed naming each bad field.

    A body must say it is JSON (Content-Type application/json): a cross-site HTML form can send
    text/plain or form data without a CORS preflight, never application/json, so this is what
    makes a forged cross-site login (login CSRF) or change impossible. Its size is bounded before
    it is read (MAX_JSON_KB, app.py), and nesting deeper than MAX_JSON_DEPTH is refused."""
    raw = request.get_data(cache=True)
    if raw.strip() and not request.is_json:
        raise UnsupportedMediaType("Send the body as JSON with the header Content-Type: application/json",
                                   {"content_type": request.mimetype or None})
    try:
        data = json.loads(raw) if raw.strip() else {}
    except RecursionError as exc:
        raise ValidationFailed(f"The request body nests deeper than {MAX_JSON_DEPTH} levels") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationFailed("The request body is not valid JSON", {"reason": str(exc)[:200]}) from exc
    if not isinstance(data, dict):
        raise ValidationFailed("The request body must be a JSON object")
    if _depth(data) > MAX_JSON_DEPTH:
        raise ValidationFailed(f"The request body nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        return model.model_validate(data, strict=True)  # JSON types as declared: no false for 0.0, no "5" for 5
    except ValidationError as exc:
        raise validation_failed(exc) from exc


def _depth(value: Any) -> int:
    """How deeply lists and objects nest in a parsed JSON value (iterative: no recursion limit)."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, level = pending.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, level)
            if level <= MAX_JSON_DEPTH:
                pending.extend((child, level + 1) for child in item)
    return deepest


def validation_failed(exc: ValidationError) -> ValidationFailed:
    fields = [
        {"field": ".".join(str(part) for part in error["loc"]) or "body", "message": error["msg"], "type": error["type"]}
        for error in exc.errors(include_url=False, include_input=False)
    ]
    summary = "; ".join(f"{item['field']}: {item['message']}" for item in fields)
    return ValidationFailed(f"Invalid request: {summary}", {"fields": fields})


def parse_query(model: type[ModelT]) -> ModelT:
    """The query string as `model` ("true"/"false" for flags), or ValidationFailed naming the parameter."""
    try:
        return model.model_validate(request.args.to_dict())
    except ValidationError as exc:
        raise validation_failed(exc) from exc


def json_body(model: type[BaseModel]) -> Callable[[View], View]:
    """Validate the body into `model` and pass it to the view as `payload`."""

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return view(*args, payload=parse_body(model), **kwargs)

        document(wrapper, body=model)
        return wrapper

    return decorate


def responds(status: int, model: type[BaseModel] | None, description: str) -> Callable[[View], View]:
    """Declare a success answer of the view for /openapi.json."""

    def decorate(view: View) -> View:
        document(view, responses={status: (model, description)})
        return view

    return decorate


def openapi(**facts: Any) -> Callable[[View], View]:
    """Declare other OpenAPI facts of a view, e.g. auth="refresh"."""

    def decorate(view: View) -> View:
        document(view, **facts)
        return view

    return decorate


def document(view: View, **facts: Any) -> None:
    """Attach OpenAPI facts to a view; dict facts merge with what is there."""
    spec: dict[str, Any] = dict(getattr(view, "openapi", {}))
    for key, value in facts.items():
        spec[key] = {**spec.get(key, {}), **value} if isinstance(value, dict) else value
    vars(view)["openapi"] = spec  # read by api/openapi.py
