"""The OpenAPI 3.1 document, built from the app's own URL map and the pydantic models its views validate with."""
from __future__ import annotations

import re
from typing import Any

from flask import Flask
from pydantic import BaseModel

from api.schemas import ErrorBody

_CONVERTER = re.compile(r"<(?:(?P<kind>[a-z]+)(?:\([^)]*\))?:)?(?P<name>\w+)>")
_PARAM_TYPES = {"int": "integer", "float": "number", "uuid": "string", "path": "string", "string": "string"}
_SECURITY: dict[str, list[dict[str, list[str]]]] = {"bearer": [{"bearerAuth": []}, {"basicAuth": []}], "refresh": [{"bearerAuth": []}],
             "admin": [{"bearerAuth": []}, {"basicAuth": []}]}


def build_openapi(app: Flask, title: str, version: str) -> dict[str, Any]:
    components: dict[str, Any] = {}
    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint == "static":
            continue
        view = app.view_functions[rule.endpoint]
        facts: dict[str, Any] = getattr(view, "openapi", {})
        path = _CONVERTER.sub(lambda m: "{" + m.group("name") + "}", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            paths.setdefault(path, {})[method.lower()] = _operation(rule, view, facts, components)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A JWT access token from /auth/login, or an API key from /auth/api-keys",
                },
                "basicAuth": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "Username with password or API key; failed guesses count against RATELIMIT_LOGIN",
                },
            },
        },
    }


def _operation(rule: Any, view: Any, facts: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    doc = (view.__doc__ or rule.endpoint).strip().splitlines()[0]
    operation: dict[str, Any] = {
        "operationId": rule.endpoint.replace(".", "_"),
        "summary": doc,
        "tags": [rule.endpoint.split(".")[0]] if "." in rule.endpoint else ["default"],
        "responses": {"default": _json_response("Error (see API.md)", _ref(ErrorBody, components))},
    }
    parameters = [_path_parameter(m) for m in _CONVERTER.finditer(rule.rule)]
    if "query" in facts:
        parameters += _query_parameters(facts["query"])
    if parameters:
        operation["parameters"] = parameters
    if "body" in facts:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(facts["body"], components)}},
        }
    if "multipart" in facts:
        field = facts["multipart"]
        operation["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": [field], "properties": {field: {"type": "string", "format": "binary"}}}}}}
    for status, (model, description) in sorted(facts.get("responses", {}).items()):
        if model is None:
            operation["responses"][str(status)] = {"description": description}
        else:
            operation["responses"][str(status)] = _json_response(description, _ref(model, components))
    if facts.get("media"):
        for status, media in facts["media"].items():
            operation["responses"][str(status)] = {"description": "OK", "content": {media: {"schema": {"type": "string"}}}}
    for status, media in facts.get("also_media", {}).items():  # e.g. SSE beside the JSON answer
        operation["responses"][str(status)].setdefault("content", {})[media] = {"schema": {"type": "string"}}
    if facts.get("auth") in _SECURITY:
        operation["security"] = _SECURITY[facts["auth"]]
    else:
        operation["security"] = []
    return operation


def _ref(model: type[BaseModel], components: dict[str, Any]) -> dict[str, str]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in schema.pop("$defs", {}).items():
        components[name] = definition
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json_response(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _path_parameter(match: re.Match[str]) -> dict[str, Any]:
    kind = _PARAM_TYPES.get(match.group("kind") or "string", "string")
    return {"name": match.group("name"), "in": "path", "required": True, "schema": {"type": kind}}


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema()
    required = set(schema.get("required", []))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": prop}
        for name, prop in schema.get("properties", {}).items()
    ]
