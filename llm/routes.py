"""Model routes: the registry with each model's state."""
from __future__ import annotations

from flask import Blueprint, Response, jsonify

from api.context import services
from api.validation import responds
from auth.decorators import login_required
from llm.schemas import ModelList

bp = Blueprint("models", __name__)


@bp.get("/models")
@login_required
@responds(200, ModelList, "The models of models.json with their state, and the active one")
def list_models() -> Response:
    """The model registry and which model answers."""
    manager = services().llm.manager
    return jsonify(models=manager.describe(), active=manager.active_id)
