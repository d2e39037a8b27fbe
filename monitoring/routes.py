"""Health, Prometheus metrics and admin error statistics."""
from __future__ import annotations

import ipaddress

from flask import Blueprint, Response, jsonify, request

from api.errors import error_response
from api.limits import not_rate_limited
from api.validation import openapi, parse_query, responds
from auth.decorators import admin_required, current_user
from common.context import audit, services
from common.errors import NotFound, PermissionDenied
from monitoring.metrics import CONTENT_TYPE
from monitoring.schemas import AuditList, AuditQuery, ErrorStatsOut, HealthOut, MaintenanceRunOut, SearchStatsOut

bp = Blueprint("monitoring", __name__)


@bp.get("/health")
@not_rate_limited
@responds(200, HealthOut, "Ready; status ok or degraded")
@responds(503, HealthOut, "No model is ready yet (with error and code)")
def health() -> Response:
    """Readiness of the model, the database and the machine."""
    report = services().health.report()
    if report.ready:
        return jsonify(report.body)
    return error_response(
        503, "MODEL_NOT_READY", "No language model is loaded yet",
        headers={"Retry-After": "10"}, extra_fields=report.body,
    )


@bp.get("/metrics")
@not_rate_limited
@openapi(media={200: "text/plain"})
def metrics() -> Response:
    """Prometheus metrics, for clients on the server's own network."""
    if not _from_allowed_network(request.remote_addr or ""):
        raise PermissionDenied("Metrics are served only to the server's own network")
    return Response(services().metrics.render(), content_type=CONTENT_TYPE)


def _from_allowed_network(address: str) -> bool:
    try:
        client = ipaddress.ip_address(address)
    except ValueError:
        return False
    networks = services().config.metrics_allowed_networks
    return any(client in ipaddress.ip_network(network, strict=False) for network in networks)


@bp.get("/stats/errors")
@admin_required
@responds(200, ErrorStatsOut, "Error counts by code and the recent errors")
def error_stats() -> Response:
    """Error statistics of this process (admins only)."""
    return jsonify(services().error_stats.snapshot())


@bp.get("/admin/audit")
@admin_required
@openapi(query=AuditQuery)
@responds(200, AuditList, "Security events, newest first, a page at a time, with the total")
def audit_log() -> Response:
    """The audit log (admins only), filtered by actor and event."""
    query = parse_query(AuditQuery)
    events, total = services().audit.page(query.user and query.user.strip().lower(), query.event,
                                          query.page, query.per_page)
    return jsonify(events=[event.as_dict() for event in events], total=total)


@bp.get("/stats/search")
@admin_required
@responds(200, SearchStatsOut, "Searches, mean and p95 seconds, in all and per user")
def search_stats() -> Response:
    """Search statistics of this process (admins only): /search, and the search of each answer."""
    svc = services()
    figures = svc.search_stats.snapshot()
    for row in figures["per_user"]:
        user = svc.users.get(row["user_id"])
        row["username"] = user.username if user else None
    return jsonify(figures)


@bp.post("/admin/maintenance/<task>")
@admin_required
@responds(200, MaintenanceRunOut, "The task ran now; outcome error with the reason when it failed")
def run_maintenance(task: str) -> Response:
    """Run one maintenance task now (admins): compact_storage, session_retention, orphaned_chunks, ..."""
    maintenance = services().maintenance
    if task not in maintenance.names():
        raise NotFound(f"No maintenance task {task!r}; tasks: {', '.join(maintenance.names())}", {"task": task})
    run = maintenance.run(task)
    audit("maintenance.run", actor=current_user().username, target=task, details={"outcome": run.outcome})
    return jsonify(task=task, started_at=run.started_at.isoformat(), duration_s=run.duration_s,
                   outcome=run.outcome, detail=run.detail)
