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
    progress: float | None = Field(description="0-1 while loading, 1 when loaded, null otherwise")
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


class ReloadResult(BaseModel):
    model: str
    reason: str
    reload_seconds: float
    requests_failed: int = Field(description="In the engine when it was replaced: answered 503 ENGINE_RESTARTED")
    requests_moved: int = Field(description="Waiting in the queue: answered by the new engine")
    pid: int = Field(description="The server process that reloaded")


class LoadResult(BaseModel):
    model: str
    state: str = Field(description="loading or ready")
    progress: float = Field(description="0-1")
