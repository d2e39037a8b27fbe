"""What the serving engine reports to /health: loaded model, queue depth (monitoring owns the shape; llm fills it)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class EngineStatus:
    loaded: bool
    model_id: str
    queue_depth: int


class EngineStatusSource(Protocol):
    def engine_status(self) -> EngineStatus: ...
