"""Request bodies validated by pydantic models; the same models feed /openapi.json."""
from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, TypeVar

from flask import request
from pydantic import BaseModel, ValidationError

from common.errors import ValidationFailed

ModelT = TypeVar("ModelT", bound=BaseModel)
View = Callable[..., Any]


def parse_body(model: type[ModelT]) -> ModelT:
    """The request's JSON body as `model`, or ValidationFailed naming each bad field."""
    raw = request.get_data(cache=True)
    try:
        data = json.loads(raw) if raw.strip() else {}
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationFailed("The request body is not valid JSON", {"reason": str(exc)[:200]}) from exc
    if not isinstance(data, dict):
        raise ValidationFailed("The request body must be a JSON object")
    try:
        return model.model_validate(data, strict=True)  # JSON types as declared: no false for 0.0, no "5" for 5
    except ValidationError as exc:
        raise validation_failed(exc) from exc


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
    view.openapi = spec  # type: ignore[attr-defined]
