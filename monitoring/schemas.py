"""Response schemas of the monitoring routes."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from api.pagination import NumberedPageQuery
from monitoring.error_stats import ErrorEvent


class HealthOut(BaseModel):
    status: str = Field(description="ok, or degraded with the reasons in problems")
    problems: list[str]
    model_loaded: bool
    model: str | None
    device: str = Field(description="cpu or cuda")
    queue_depth: int
    uptime_s: float
    gpu: dict[str, Any] | None


class ErrorStatsOut(BaseModel):
    total_errors: int
    error_types: dict[str, int]
    recent: list[ErrorEvent] = Field(description="Newest first")


class AuditEventOut(BaseModel):
    id: int
    at: str = Field(description="ISO 8601, UTC")
    actor: str | None = Field(description="The username acting (for a failed login: the name tried); null for the server")
    event: str
    target: str | None
    address: str | None = Field(description="The client's address; null for a command line")
    details: dict[str, Any] | None


class AuditList(BaseModel):
    events: list[AuditEventOut]
    total: int


class AuditQuery(NumberedPageQuery):
    user: str | None = Field(default=None, max_length=64, description="Events of this actor (username)")
    event: str | None = Field(default=None, max_length=64, description="One event, e.g. login.failed")


class SearchFigures(BaseModel):
    searches: int
    mean_s: float = Field(description="Mean seconds per search, over the last 1,000")
    p95_s: float = Field(description="95th percentile seconds, over the last 1,000")


class UserSearchFigures(SearchFigures):
    user_id: int
    username: str | None = Field(description="null for a deleted account")


class SearchStatsOut(SearchFigures):
    per_user: list[UserSearchFigures] = Field(description="The busiest users first")


class MaintenanceRunOut(BaseModel):
    task: str
    started_at: str = Field(description="ISO 8601, UTC")
    duration_s: float
    outcome: str = Field(description="ok or error")
    detail: str = Field(description="What it did: for compact_storage, the bytes reclaimed per file")
