"""What the rest of the server uses of the language model: generate, status, the model list."""
from __future__ import annotations

from collections.abc import Callable

from llm.engine import GenerationResult
from llm.manager import ModelManager
from llm.scheduler import Scheduler, Ticket
from llm.settings import GenerationOverrides
from llm.status import EngineStatus


class LLMService:
    def __init__(self, manager: ModelManager, scheduler: Scheduler) -> None:
        self.manager = manager
        self.scheduler = scheduler

    def submit(self, messages: list[dict[str, str]], overrides: GenerationOverrides | None = None,
               on_token: Callable[[str], None] | None = None) -> Ticket:
        return self.scheduler.submit(messages, overrides, on_token)

    def generate(self, messages: list[dict[str, str]], overrides: GenerationOverrides | None = None,
                 on_token: Callable[[str], None] | None = None) -> GenerationResult:
        return self.scheduler.generate(messages, overrides, on_token)

    def engine_status(self) -> EngineStatus:
        return EngineStatus(loaded=self.manager.engine() is not None, model_id=self.manager.active_id,
                            queue_depth=self.scheduler.depth())

    def close(self) -> None:
        self.scheduler.stop()
