"""Schemas shared by every route: the error body."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    error: str = Field(description="A human sentence saying what went wrong")
    code: str = Field(description="UPPER_SNAKE_CASE code, stable for programs")
    details: dict[str, Any] | None = Field(default=None, description="Optional specifics, e.g. the bad fields")
