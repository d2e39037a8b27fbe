"""Recovery: reload the model engine without restarting the server, on request or by a watchdog.

A reload builds a fresh engine for the active model beside the old one, checks that it answers,
makes it active, then restarts the scheduler on it: the requests waiting in the queue move to the
new engine and are answered there; the batch that was inside the old engine fails with 503
ENGINE_RESTARTED (send it again) - none is dropped without a word. The old engine's thread, if it
is stuck in native code, is abandoned (a thread cannot be killed); its results, should it ever
return, are thrown away.

The watchdog (a maintenance task, every WATCHDOG_S) reloads when the engine stops making progress:
a batch still inside the engine ENGINE_STALL_S past its LLM_TIMEOUT_S deadline (the engines stop a
request at its deadline themselves, so this is a hang), or ENGINE_FAILURES batches in a row whose
engine call failed whole. Each reload is logged with its reason.

Several server processes (gunicorn workers) each hold an engine: `flask models reload` leaves a
request in DATA_DIR that each process's watchdog picks up, and waits for their answers there.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from llm.manager import ModelManager
from llm.scheduler import Scheduler

log = logging.getLogger(__name__)

ENGINE_STALL_S = 30.0
ENGINE_FAILURES = 3
REQUEST_FILE = "engine-reload-request.json"
REPLIES_DIR = "engine-reloads"


@dataclass(frozen=True)
class Reloaded:
    model: str
    reason: str
    reload_seconds: float
    requests_failed: int  # in the engine when it was replaced: 503 ENGINE_RESTARTED
    requests_moved: int  # waiting: answered by the new engine
    pid: int


class EngineRecovery:
    def __init__(self, manager: ModelManager, scheduler: Scheduler, data_dir: Path,
                 stall_s: float = ENGINE_STALL_S, failures: int = ENGINE_FAILURES) -> None:
        self._manager, self._scheduler = manager, scheduler
        self._data_dir = data_dir
        self._stall_s, self._failures = stall_s, failures
        self._lock = threading.Lock()
        self._answered = time.time()  # reload requests older than this process are not for it

    def reload(self, reason: str) -> Reloaded:
        """Reload now (ModelLoadFailed when the new engine cannot be loaded: the old one stays)."""
        with self._lock:
            started = time.monotonic()
            log.warning("reloading the model engine: %s", reason)
            engine = self._manager.reload()
            failed, moved = self._scheduler.restart(reason, engine)
            done = Reloaded(engine.spec.id, reason, round(time.monotonic() - started, 3), failed, moved, os.getpid())
            log.warning("model engine reloaded in %.1f s (%s): %d request(s) failed, %d moved to the new engine",
                        done.reload_seconds, reason, failed, moved)
            return done

    def watch(self) -> str:
        """The watchdog's round: reload when stuck, failing, or asked to by `flask models reload`."""
        requested = self._requested()
        reason = self._trouble() or requested
        if reason is None:
            return "engine making progress"
        done = self.reload(reason)
        if requested:
            self._answer(done)
        return f"reloaded ({reason}) in {done.reload_seconds} s"

    def request_reload(self, wait_s: float, settle_s: float) -> list[Reloaded]:
        """From a command line: ask every server process on this DATA_DIR to reload, and collect
        their answers: until `settle_s` passes without a new one after the first, `wait_s` at most."""
        asked = time.time()
        replies = self._data_dir / REPLIES_DIR
        replies.mkdir(parents=True, exist_ok=True)
        _write_private(self._data_dir / REQUEST_FILE, {"at": asked})
        deadline = time.monotonic() + wait_s
        found: dict[str, Reloaded] = {}
        last_new = 0.0
        while time.monotonic() < deadline and not (found and time.monotonic() - last_new > settle_s):
            for path in replies.glob("*.json"):
                reply = json.loads(path.read_text())
                if reply.pop("at") >= asked and path.name not in found:
                    found[path.name], last_new = Reloaded(**reply), time.monotonic()
            time.sleep(0.2)
        return list(found.values())

    def _trouble(self) -> str | None:
        stalled = self._scheduler.stalled_for()
        if stalled > self._stall_s:
            return f"a generation has been stuck {stalled:.0f} s past its deadline"
        if self._scheduler.failed_batches >= self._failures:
            return f"{self._scheduler.failed_batches} generations in a row failed in the engine"
        return None

    def _requested(self) -> str | None:
        """A `flask models reload` request left since this process last answered one."""
        path = self._data_dir / REQUEST_FILE
        try:
            at = float(json.loads(path.read_text())["at"])
        except (OSError, ValueError, KeyError):
            return None
        if at <= self._answered:
            return None
        self._answered = time.time()
        return "asked by flask models reload"

    def _answer(self, done: Reloaded) -> None:
        """Leave this process's reply for the command line that asked."""
        _write_private(self._data_dir / REPLIES_DIR / f"{done.pid}.json", {"at": time.time(), **asdict(done)})


def _write_private(path: Path, content: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(content))
    temporary.chmod(0o600)
    temporary.replace(path)
