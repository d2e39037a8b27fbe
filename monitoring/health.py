"""The health report: model readiness, database reachability, queue, uptime, GPU."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from monitoring.status import EngineStatusSource
from monitoring.system import SystemMonitor


class Pingable(Protocol):
    def ping(self) -> None: ...


class ProblemSource(Protocol):
    def problems(self) -> list[str]: ...


@dataclass(frozen=True)
class HealthReport:
    body: dict[str, Any]

    @property
    def ready(self) -> bool:
        """False while no model can answer: the route then says 503."""
        return bool(self.body["model_loaded"])


class HealthService:
    def __init__(self, database: Pingable, engine: EngineStatusSource, monitor: SystemMonitor,
                 checks: list[ProblemSource] | None = None,
                 sections: dict[str, Callable[[], Any]] | None = None) -> None:
        self._database = database
        self._checks = checks or []
        self._sections = sections or {}
        self._engine = engine
        self._monitor = monitor
        self._started = time.monotonic()

    def report(self) -> HealthReport:
        engine = self._engine.engine_status()
        problems = self._problems()
        return HealthReport({
            "status": "degraded" if problems else "ok",
            "problems": problems,
            "model_loaded": engine.loaded,
            "model": engine.model_id,
            "device": self._monitor.device(),
            "queue_depth": engine.queue_depth,
            "uptime_s": round(time.monotonic() - self._started, 1),
            "gpu": self._monitor.gpu(),
            **{name: section() for name, section in self._sections.items()},
        })

    def _problems(self) -> list[str]:
        try:
            self._database.ping()
        except Exception as exc:  # any driver error means the same to a monitor
            return [f"database unreachable: {type(exc).__name__}"]
        return [problem for check in self._checks for problem in check.problems()]
