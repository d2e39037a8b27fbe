"""Model routes: the registry with each model's state."""
from __future__ import annotations

from dataclasses import asdict

from flask import Blueprint, Response, jsonify

from api.validation import json_body, responds
from auth.decorators import admin_required, current_user, login_required
from common.context import audit, services
from llm.errors import ModelNotReady
from llm.schemas import LoadResult, ModelList, ReloadResult, SwapRequest, SwapResult

bp = Blueprint("models", __name__)


@bp.get("/models")
@login_required
@responds(200, ModelList, "The models of models.json with their state, and the active one")
def list_models() -> Response:
    """The model registry and which model answers."""
    manager = services().llm.manager
    return jsonify(models=manager.describe(), active=manager.active_id)


@bp.post("/models/swap")
@admin_required
@json_body(SwapRequest)
@responds(200, SwapResult, "Switched; the previous model stays loaded for one rollback")
def swap_model(payload: SwapRequest) -> Response:
    """Load a model beside the active one, check it, then switch with no request lost (admins)."""
    swapped = services().llm.manager.swap(payload.model)
    audit("model.swapped", actor=current_user().username, target=payload.model,
          details={"previous": swapped["previous"]})
    return jsonify(swapped)


@bp.post("/models/reload")
@admin_required
@responds(200, ReloadResult, "A fresh engine answers; what was in the old one failed with ENGINE_RESTARTED")
def reload_model() -> Response:
    """Reload the active model's engine without restarting the server (admins): waiting requests
    move to the new engine, the batch inside the old one fails with a clear 503."""
    admin = current_user().username
    reloaded = services().recovery.reload(f"asked by {admin} over HTTP")
    audit("model.reloaded", actor=admin, target=reloaded.model,
          details={"requests_failed": reloaded.requests_failed, "requests_moved": reloaded.requests_moved})
    return jsonify(asdict(reloaded))


@bp.post("/models/load")
@login_required
@json_body(SwapRequest)
@responds(200, LoadResult, "Loaded: requests naming it are answered at once")
@responds(202, LoadResult, "Loading (or just started): follow `progress` on GET /models")
def load_model(payload: SwapRequest) -> tuple[Response, int]:
    """Start loading a models.json entry beside the active one (the UI does when a person picks it
    for a chat), within LLM_MEMORY_BUDGET_MB; 404 for an unknown id."""
    manager = services().llm.manager
    try:
        manager.engine_for(payload.model)
    except ModelNotReady:
        return jsonify(model=payload.model, state="loading", progress=manager.progress().get(payload.model, 0.0)), 202
    return jsonify(model=payload.model, state="ready", progress=1.0), 200
