"""Background ingestion: jobs on a Huey queue (SQLite file embedded, or Redis), and recovery.

The documents table stays the source of truth (status `queued`, `processing`, ...), so a crash
loses nothing: at start every queued document is queued again, and every few seconds
`processing` ones whose worker is dead (same host, pid gone) or silent for JOB_STALE_S are
requeued. Claiming is an atomic queued -> processing update, so a job delivered twice, or
picked by two workers, is ingested once.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from huey import Huey, RedisHuey, SqliteHuey

from ingest.ingestion import IngestionPipeline
from ingest.sandbox import warm_up
from rag.repository import WORKER_ID, DocumentRepository, DocumentView

log = logging.getLogger(__name__)
POLL_MIN_S, POLL_MAX_S = 0.05, 1.0


def worker_alive(worker_id: str) -> bool:
    """False when the worker surely died: it ran on this host and its process is gone, or it had
    this process's pid but is an earlier incarnation. Elsewhere, only its silence tells (JOB_STALE_S)."""
    host, pid = (worker_id.split(":") + ["", ""])[:2]
    if host != socket.gethostname() or not pid.isdigit():
        return True
    if int(pid) == os.getpid():
        return worker_id == WORKER_ID
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def make_queue(url: str, path: Path) -> Huey:
    """The job queue: Redis when INGEST_QUEUE_URL names one (shared by every process and host),
    else a SQLite file under the data directory (one machine, survives restarts)."""
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisHuey("docchat-ingest", url=url, results=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    return SqliteHuey("docchat-ingest", filename=str(path), results=False)


class IngestionWorkers:
    """Ingestion jobs on a Huey queue, consumed by threads of this process (`consume=True`, the
    embedded default) or by `flask ingest-worker` processes (scale-out)."""

    def __init__(self, pipeline: IngestionPipeline, repository: DocumentRepository, huey: Huey, threads: int = 1,
                 stale_s: int = 120, sweep_s: float = 5.0, consume: bool = True) -> None:
        self._pipeline = pipeline
        self._repository = repository
        self.huey = huey
        self._task = huey.task(name="docchat.ingest")(self._ingest)
        self._threads = max(1, threads)
        self._stale = timedelta(seconds=stale_s)
        self._sweep_s = sweep_s
        self._consume = consume
        self._stop = threading.Event()
        self._started = False
        self._start_lock = threading.Lock()

    def enqueue(self, document_id: str) -> None:
        """Queue a document (a duplicate is harmless: only one worker can claim it). If the queue is
        down (Redis restarting), the document stays `queued` in the database and the sweeper queues
        it again once the queue answers: the upload itself does not fail."""
        try:
            self._task(document_id)
        except Exception:  # noqa: BLE001 - the table is the source of truth; the sweeper retries
            log.warning("ingestion queue unavailable; document %s will be queued by the sweeper", document_id,
                        exc_info=True)

    def run_now(self, document_id: str, on_progress: Callable[[float], None] | None = None) -> DocumentView | None:
        """Ingest in the calling thread (the CLI); None when another worker holds the document."""
        return self._pipeline.run(document_id, on_progress)

    def depth(self) -> int:
        return self.huey.pending_count()

    def start(self) -> None:
        """Recover what an earlier run left, then consume (if this process does). Safe to call often."""
        with self._start_lock:
            if self._started:
                return
            self._started = True
        self.recover()
        threading.Thread(target=self._sweep_forever, name="ingest-sweeper", daemon=True).start()
        if self._consume:
            threading.Thread(target=warm_up, name="parser-warm-up", daemon=True).start()
            for number in range(self._threads):
                threading.Thread(target=self._consume_forever, name=f"ingest-{number}", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def recover(self) -> None:
        """Queue every `queued` document (the queue may have lost it) and requeue abandoned ones."""
        for document_id in self._repository.queued_ids():
            self.enqueue(document_id)
        self.sweep()

    def sweep(self) -> None:
        """Requeue jobs whose worker died (kill -9, a lost host) or went silent for JOB_STALE_S, and
        queue again documents left `queued` that long (their job was lost with a queue outage)."""
        for document_id in self._repository.requeue_abandoned(self._stale, worker_alive):
            log.warning("document %s was left processing by a dead worker; ingesting it again", document_id)
            self.enqueue(document_id)
        for document_id in self._repository.touch_stale_queued(self._stale):
            self.enqueue(document_id)

    def _ingest(self, document_id: str) -> None:
        self._pipeline.run(document_id)

    def _sweep_forever(self) -> None:
        while not self._stop.wait(self._sweep_s):
            try:
                self.sweep()
            except Exception:  # noqa: BLE001 - the sweeper must outlive a database hiccup
                log.exception("ingestion sweep failed")

    def _consume_forever(self) -> None:
        """Huey's own consumer installs signal handlers (main thread only); in a server, poll instead."""
        idle = POLL_MIN_S
        while not self._stop.is_set():
            try:
                task = self.huey.dequeue()
            except Exception:  # noqa: BLE001 - e.g. Redis restarting: wait and try again
                log.exception("ingestion queue unavailable")
                task = None
                idle = POLL_MAX_S
            if task is None:
                self._stop.wait(idle)
                idle = min(idle * 2, POLL_MAX_S)
                continue
            idle = POLL_MIN_S
            try:
                self.huey.execute(task)
            except Exception:  # noqa: BLE001 - a failed job must never take the worker down
                log.exception("ingestion job %s failed", task.id)
