"""Response schemas of the model routes."""
from __future__ import annotations

from pydantic import BaseModel, Field


class ModelOut(BaseModel):
    id: str
    name: str
    backend: str
    context_length: int
    default: bool
    loaded: bool
    state: str = Field(description="available, loading, ready, active or failed")
    error: str | None


class ModelList(BaseModel):
    models: list[ModelOut]
    active: str


class SwapRequest(BaseModel):
    model: str = Field(min_length=1, max_length=200, description="An id from GET /models")


class SwapResult(BaseModel):
    active: str
    previous: str | None
    swap_seconds: float
