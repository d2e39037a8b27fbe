"""The landing page and the OpenAPI document."""
from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, render_template

from api.openapi import build_openapi
from common.context import services

bp = Blueprint("meta", __name__)
VERSION = "0.1.0"


@bp.get("/")
def index() -> str:
    """The landing page: what this server is and where its API is described."""
    return render_template("index.html", model=services().models.default.id, version=VERSION)


@bp.get("/openapi.json")
def openapi_document() -> Response:
    """This API's OpenAPI 3.1 description, built from the routes that exist."""
    return jsonify(build_openapi(current_app, "Document chat server", VERSION))
