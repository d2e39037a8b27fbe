"""Response schemas of the monitoring routes."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

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
