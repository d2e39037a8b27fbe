"""What the rest of the server uses of the language model: generate, status, the model list."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from common.devices import resolve_placement
from llm.engine import GenerationResult, Prompt
from llm.manager import ModelManager
from llm.registry import ModelRegistry
from llm.scheduler import Scheduler, Ticket
from llm.settings import GenerationOverrides
from monitoring.status import EngineStatus


@dataclass(frozen=True)
class ActiveModel:
    """What prompt assembly needs of the model that will answer: its window and its tokenizer."""

    id: str
    context_length: int
    max_new_tokens: int
    count_tokens: Callable[[str], int]


def batch_wait_for(device: str) -> float:
    """How long the scheduler lets requests gather into one batch on `device`."""
    return 0.005 if device.startswith("cuda") else 0.02


class LLMService:
    def __init__(self, manager: ModelManager, scheduler: Scheduler) -> None:
        self.manager = manager
        self.scheduler = scheduler

    def submit(self, messages: Prompt, overrides: GenerationOverrides | None = None,
               on_token: Callable[[str], None] | None = None, owner: object = None,
               stops: tuple[str, ...] = (), model: str | None = None) -> Ticket:
        """Queue a generation; `owner` (the user it is for) is held to its share of the queue;
        `model`: a models.json id to answer with instead of the active model."""
        return self.scheduler.submit(messages, overrides, on_token, owner, stops, model)

    def generate(self, messages: Prompt, overrides: GenerationOverrides | None = None,
                 on_token: Callable[[str], None] | None = None, owner: object = None,
                 stops: tuple[str, ...] = (), model: str | None = None) -> GenerationResult:
        return self.scheduler.generate(messages, overrides, on_token, owner, stops, model)

    def active(self, model: str | None = None) -> ActiveModel:
        """The active model (or `model`, loaded beside it); ModelNotReady (503) while it loads."""
        engine = self.scheduler.engine(model)
        spec = engine.spec
        return ActiveModel(spec.id, spec.context_length, int(spec.generation.get("max_new_tokens", 256)),
                           engine.count_tokens)

    def engine_status(self) -> EngineStatus:
        return EngineStatus(loaded=self.manager.engine() is not None, model_id=self.manager.active_id,
                            queue_depth=self.scheduler.depth())

    def close(self) -> None:
        self.scheduler.stop()


def build_llm_service(registry: ModelRegistry, device: str, dtype: str, cache_dir: Path, *,
                      max_queue: int = 8, max_batch: int = 8, timeout_s: float = 120.0,
                      max_queue_per_user: int | None = None, static_decode: str = "auto",
                      memory_budget_mb: int = 0) -> LLMService:
    """The service and its parts; `device` and `dtype` may be "auto" (CUDA fp16 where a GPU is visible).

    On a GPU the scheduler waits 5 ms (not 20) for requests to share a batch: a prefill there takes
    a few milliseconds, and the wait is part of every first token."""
    placement = resolve_placement(device, dtype)
    manager = ModelManager(registry, *placement, cache_dir, static_decode=static_decode,
                           memory_budget_bytes=memory_budget_mb * 2**20)
    scheduler = Scheduler(manager.engine, max_queue=max_queue, max_batch=max_batch, timeout_s=timeout_s,
                          max_per_owner=max_queue_per_user, batch_wait_s=batch_wait_for(placement[0]),
                          engine_for=manager.engine_for)
    return LLMService(manager, scheduler)
