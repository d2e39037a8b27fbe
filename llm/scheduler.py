"""One scheduler owns the model: a bounded queue, dynamic batching, timeouts and cancellation.

Requests wait in FIFO order; the worker takes the oldest, adds every waiting request whose
settings can share its generate call (up to MAX_BATCH), and runs them together: batching 8
prompts multiplied aggregate tokens/s 4.5x (fp32) to 6.7x (bf16) here. Each request still
streams its own tokens. A full queue is refused at once (503 with Retry-After), never queued
without bound.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Future

from common.errors import ServiceUnavailable
from llm.engine import Engine, GenerationRequest, GenerationResult, Prompt
from llm.errors import EngineRestarted, GenerationTimeout, ModelNotReady, QueueFull, ShareExceeded
from llm.settings import GenerationOverrides, adaptive_settings

log = logging.getLogger(__name__)


def _batch_key(ticket: "Ticket") -> tuple[object, ...]:
    """Requests with equal keys share one engine call: the same engine, and the same settings
    unless the engine chooses each request's tokens itself (llama.cpp, a remote server)."""
    engine = ticket.request.engine
    if engine.mixes_settings:
        return (id(engine),)
    return (id(engine), *ticket.request.settings.batch_key())


class Ticket:
    """A submitted request: wait for its result, or cancel it (a client that went away)."""

    def __init__(self, request: GenerationRequest) -> None:
        self.request = request
        self.future: Future[GenerationResult] = Future()

    def result(self, timeout: float | None = None) -> GenerationResult:
        return self.future.result(timeout)

    def cancel(self) -> None:
        self.request.cancelled.set()


class Scheduler:
    def __init__(self, engine: Callable[[], Engine | None], max_queue: int = 8, max_batch: int = 8,
                 timeout_s: float = 120.0, batch_wait_s: float = 0.02, max_per_owner: int | None = None,
                 engine_for: Callable[[str], Engine] | None = None) -> None:
        """`max_per_owner` bounds one caller's share of `max_queue` (default: all of it), so one
        user sending many requests at once is refused (ShareExceeded) while others still get in."""
        self._engine = engine
        self._engine_for = engine_for  # a model named by the request (ModelManager.engine_for)
        self._max_queue, self._max_batch = max_queue, max_batch
        self._max_per_owner = max_per_owner or max_queue
        self._owners: Counter[object] = Counter()
        self._observers: list[Callable[[str, GenerationResult], None]] = []
        self._between: list[Callable[[], None]] = []
        self._timeout_s, self._batch_wait_s = timeout_s, batch_wait_s
        self._waiting: deque[Ticket] = deque()
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._epoch = 0  # a restart abandons the worker of the epoch before (stuck in its engine)
        self._running: tuple[list[Ticket], float] | None = None  # the batch in the engine, since when
        self.failed_batches = 0  # batches in a row whose engine call failed whole

    def depth(self) -> int:
        """Requests admitted and not finished (waiting, being tokenized or running)."""
        with self._condition:
            return sum(self._owners.values())

    def engine(self, model: str | None = None) -> Engine:
        """The engine new requests go to (of `model` when one is named); ModelNotReady (503) while
        none is loaded."""
        if model is not None and self._engine_for is not None:
            return self._engine_for(model)
        engine = self._engine()
        if engine is None:
            raise ModelNotReady("The language model is not loaded yet", retry_after_s=10)
        return engine

    def submit(self, messages: Prompt, overrides: GenerationOverrides | None = None,
               on_token: Callable[[str], None] | None = None, owner: object = None,
               stops: tuple[str, ...] = (), model: str | None = None) -> Ticket:
        """Queue a chat for generation with settings adapted to its length; QueueFull when full,
        ShareExceeded when `owner` (a user id; None: the server itself) holds its share already.
        The answer ends where one of `stops` begins (llm/faithful.py); `model`: a models.json id
        other than the active model's."""
        engine = self.engine(model)
        self._admit(owner)  # refused before the prompt is even tokenized
        try:
            prompt = engine.encode(messages)
            settings = adaptive_settings(prompt.tokens, engine.spec.generation.get("max_new_tokens"), overrides)
        except BaseException:
            self._release(owner)
            raise
        ticket = Ticket(GenerationRequest(messages, settings, prompt, engine, on_token,
                                          deadline=time.monotonic() + self._timeout_s, stops=stops))
        ticket.future.add_done_callback(lambda _future: self._release(owner))
        with self._condition:
            self._waiting.append(ticket)
            self._ensure_worker()
            self._condition.notify()
        return ticket

    def observe(self, observer: Callable[[str, GenerationResult], None]) -> None:
        """Call `observer(model id, result)` after every finished generation (metrics)."""
        self._observers.append(observer)

    def between_batches(self, hook: Callable[[], None]) -> None:
        """Call `hook()` on the generation thread after each batch (freeing GPU memory under pressure)."""
        self._between.append(hook)

    def saturation(self) -> float:
        """The share of the queue in use (1.0: the next request is refused)."""
        return self.depth() / self._max_queue

    def _admit(self, owner: object) -> None:
        with self._condition:
            if sum(self._owners.values()) >= self._max_queue:
                raise QueueFull(f"The server is busy ({self._max_queue} requests in progress); retry shortly",
                                retry_after_s=2)
            if owner is not None and self._owners[owner] >= self._max_per_owner:
                raise ShareExceeded(f"You already have {self._max_per_owner} answer(s) in progress "
                                    "(LLM_MAX_QUEUE_PER_USER); wait for one to finish", retry_after_s=2)
            self._owners[owner] += 1

    def _release(self, owner: object) -> None:
        with self._condition:
            self._owners[owner] -= 1
            if self._owners[owner] <= 0:
                del self._owners[owner]

    def generate(self, messages: Prompt, overrides: GenerationOverrides | None = None,
                 on_token: Callable[[str], None] | None = None, owner: object = None,
                 stops: tuple[str, ...] = (), model: str | None = None) -> GenerationResult:
        """Submit and wait; GenerationTimeout when the time limit passes first."""
        ticket = self.submit(messages, overrides, on_token, owner, stops, model)
        result = ticket.result()
        if result.finish_reason == "timeout":
            raise GenerationTimeout(f"Generation took longer than {self._timeout_s:g} s", retry_after_s=5)
        return result

    def stop(self) -> None:
        with self._condition:
            self._stopped = True
            self._condition.notify_all()

    def _finished(self, epoch: int, failed: bool) -> bool:
        """The engine call of this epoch's running batch returned; False when a restart abandoned it."""
        with self._condition:
            if epoch != self._epoch:
                return False
            self._running = None
            self.failed_batches = self.failed_batches + 1 if failed else 0
            return True

    def stalled_for(self) -> float:
        """Seconds the running batch has been in the engine past its time limit (0: none is late)."""
        with self._condition:
            if self._running is None:
                return 0.0
            return max(0.0, time.monotonic() - self._running[1] - self._timeout_s)

    def restart(self, reason: str, engine: Engine) -> tuple[int, int]:
        """Abandon the running batch (its requests fail with EngineRestarted saying `reason`) and
        its worker thread, move the waiting requests of the same model to `engine` (reloaded; those of
        other models loaded beside it stay on theirs), give every waiting request a full time limit
        from now (they waited behind the hang), and start a new worker. Returns (requests failed,
        requests moved)."""
        with self._condition:
            self._epoch += 1
            running, self._running = self._running, None
            self.failed_batches = 0
            failed = [ticket for ticket in (running[0] if running else []) if not ticket.future.done()]
            for ticket in failed:
                ticket.request.cancelled.set()
                ticket.future.set_exception(EngineRestarted(f"The model engine was reloaded ({reason}); "
                                                            "send the request again", retry_after_s=2))
            moved = [ticket for ticket in self._waiting if ticket.request.engine.spec.id == engine.spec.id]
            for ticket in moved:
                ticket.request.engine = engine
            for ticket in self._waiting:  # the hang was not theirs: a full time limit from now, every model
                ticket.request.deadline = time.monotonic() + self._timeout_s
            self._thread = None
            self._condition.notify_all()  # the abandoned worker, if it waits, ends
            if self._waiting:
                self._ensure_worker()
            return len(failed), len(moved)

    def _ensure_worker(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._work, args=(self._epoch,), name="generation", daemon=True)
            self._thread.start()

    def _work(self, epoch: int) -> None:
        while epoch == self._epoch:
            batch = self._next_batch(epoch)
            if batch is None:
                return
            self._run(batch, epoch)
            for hook in self._between:
                try:
                    hook()
                except Exception:  # noqa: BLE001 - housekeeping must not stop generation
                    log.exception("a between-batches hook failed")

    def _next_batch(self, epoch: int) -> list[Ticket] | None:
        with self._condition:
            while not self._waiting and not self._stopped and epoch == self._epoch:
                self._condition.wait()
            if self._stopped or epoch != self._epoch:
                return None
        time.sleep(self._batch_wait_s)  # let requests that arrive together share the batch
        with self._condition:
            if epoch != self._epoch or not self._waiting:
                return None if epoch != self._epoch else []
            first = self._waiting.popleft()
            key = _batch_key(first)
            batch = [first]
            for ticket in list(self._waiting):
                if len(batch) >= self._max_batch:
                    break
                if _batch_key(ticket) == key:
                    self._waiting.remove(ticket)
                    batch.append(ticket)
            return batch

    def _run(self, batch: list[Ticket], epoch: int) -> None:
        live = [ticket for ticket in batch if not ticket.request.cancelled.is_set()]
        for ticket in batch:
            if ticket not in live:
                ticket.future.set_exception(ServiceUnavailable("cancelled"))
        if not live:
            return
        with self._condition:
            self._running = (live, time.monotonic())
        try:
            results = live[0].request.engine.generate([ticket.request for ticket in live])
        except Exception as exc:  # noqa: BLE001 - every waiting caller must hear about it
            log.exception("generation failed for a batch of %d", len(live))
            if self._finished(epoch, failed=True):
                for ticket in live:
                    ticket.future.set_exception(exc)
            return
        if not self._finished(epoch, failed=False):
            return  # abandoned by a restart: its callers have been told already
        for ticket, result in zip(live, results, strict=True):
            if isinstance(result, Exception):
                ticket.future.set_exception(result)
            else:
                for observer in self._observers:
                    try:
                        observer(ticket.request.engine.spec.id, result)
                    except Exception:  # noqa: BLE001 - a metrics failure must not fail the answer
                        log.exception("a generation observer failed")
                ticket.future.set_result(result)
