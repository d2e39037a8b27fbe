"""The maintenance schedule: periodic tasks, each run logged with its duration and outcome, and
the last runs shown in /health.

Tasks (intervals from the config):
- session_retention: delete chat sessions idle past CHAT_RETENTION_DAYS (off at 0)
- orphaned_chunks: remove chunks whose document is gone
- stale_chunks: remove a document's chunks numbered past its chunk count (left by an interrupted
  re-ingestion; chunk ids are deterministic, so this is the only way a chunk can be doubled)
- memory_watch: sample this process's RSS (and GPU memory); memory rising across
  MEMORY_LEAK_CHECKS samples in a row is reported as a leak warning (log and /health)
- alerts: check the alert thresholds (monitoring/alerts.py)
- compact_storage: VACUUM the SQLite files, report the bytes reclaimed (maintenance/compaction.py)
- resource_log: one log line of CPU, memory and GPU
- engine_watchdog: reload the model engine when it is stuck or keeps failing (llm/recovery.py)
A task whose interval is 0 runs only when asked (POST /admin/maintenance/<task>).
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from common.database import utcnow

log = logging.getLogger(__name__)

Task = Callable[[], str]  # does the work, returns a one-line outcome


@dataclass
class TaskRun:
    started_at: datetime
    duration_s: float
    outcome: str  # ok or error
    detail: str


class LeakWatch:
    """Memory readings over time; a leak is memory that only ever rises across `checks` readings."""

    def __init__(self, read: Callable[[], dict[str, int]], checks: int = 6, min_growth: float = 0.05) -> None:
        self._read = read
        self._checks, self._min_growth = checks, min_growth
        self._history: dict[str, deque[int]] = {}
        self.warning: str | None = None

    def sample(self) -> str:
        warnings = []
        for name, value in self._read().items():
            history = self._history.setdefault(name, deque(maxlen=self._checks))
            history.append(value)
            rising = len(history) == self._checks and all(b > a for a, b in zip(history, list(history)[1:], strict=False))
            if rising and history[-1] >= history[0] * (1 + self._min_growth):
                warnings.append(f"{name} rose in each of the last {self._checks} checks, "
                                f"{history[0] // 2**20} MiB to {history[-1] // 2**20} MiB: a possible leak")
        self.warning = "; ".join(warnings) or None
        if self.warning:
            log.warning("memory watch: %s", self.warning)
        return self.warning or "memory steady"


class MaintenanceScheduler:
    def __init__(self, tasks: dict[str, tuple[float, Task]], leak_watch: LeakWatch | None = None,
                 deferred: set[str] | None = None) -> None:
        """`deferred`: tasks first run one interval after start, not at start (compaction)."""
        self._tasks = tasks
        self._deferred = deferred or set()
        self._leak_watch = leak_watch
        self._last: dict[str, TaskRun] = {}
        self._due: dict[str, float] = {}
        self._stop = threading.Event()
        self._started = False
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if self._started or not self._tasks:
                return
            self._started = True
        threading.Thread(target=self._run_forever, name="maintenance", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def add(self, name: str, every: float, task: Task) -> None:
        """One more task (before start)."""
        self._tasks[name] = (every, task)

    def names(self) -> list[str]:
        return list(self._tasks)

    def run(self, name: str) -> TaskRun:
        """Run one task now, record and log how it went."""
        started, clock = utcnow(), time.perf_counter()
        try:
            outcome, detail = "ok", self._tasks[name][1]()
        except Exception as exc:  # noqa: BLE001 - one failing task must not stop the others
            outcome, detail = "error", f"{type(exc).__name__}: {exc}"[:300]
            log.exception("maintenance task %s failed", name)
        run = TaskRun(started, round(time.perf_counter() - clock, 3), outcome, detail)
        self._last[name] = run
        log.info("maintenance: %s took %.3f s, %s: %s", name, run.duration_s, outcome, detail)
        return run

    def status(self) -> dict[str, Any]:
        """Each task's interval and last run, for /health."""
        return {name: {"every_s": every, **({"last_run": self._last[name].started_at.isoformat(),
                                               "duration_s": self._last[name].duration_s,
                                               "outcome": self._last[name].outcome,
                                               "detail": self._last[name].detail} if name in self._last else {})}
                for name, (every, _) in self._tasks.items()}

    def problems(self) -> list[str]:
        failed = [f"maintenance task {name} failed: {run.detail}" for name, run in self._last.items()
                  if run.outcome == "error"]
        leak = [self._leak_watch.warning] if self._leak_watch and self._leak_watch.warning else []
        return failed + leak

    def _run_forever(self) -> None:
        now = time.monotonic()
        self._due = {name: now + (every if name in self._deferred else 0)
                     for name, (every, _) in self._tasks.items() if every > 0}
        while self._due and not self._stop.is_set():
            for name, (every, _) in self._tasks.items():
                if name in self._due and time.monotonic() >= self._due[name]:
                    self.run(name)
                    self._due[name] = time.monotonic() + every
            wait = max(0.05, min(self._due.values()) - time.monotonic())
            self._stop.wait(wait)
