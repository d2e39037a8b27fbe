"""What the serving engine reports to /health: loaded model, queue depth."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from llm.registry import ModelRegistry


@dataclass(frozen=True)
class EngineStatus:
    loaded: bool
    model_id: str
    queue_depth: int


class EngineStatusSource(Protocol):
    def engine_status(self) -> EngineStatus: ...


class NoEngine:
    """Stands where no generation engine runs in this process: the registry's default, not loaded."""

    def __init__(self, registry: ModelRegistry) -> None:
        self._registry = registry

    def engine_status(self) -> EngineStatus:
        return EngineStatus(loaded=False, model_id=self._registry.default.id, queue_depth=0)
