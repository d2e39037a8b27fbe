"""Background ingestion in this process: worker threads, and recovery of jobs a crash left behind.

The durable queue is the documents table itself (status `queued`), so a crash loses nothing: at
start, and every few seconds after, queued documents are picked up and `processing` ones whose
worker is dead (same host, pid gone) or silent for JOB_STALE_S are queued again. Claiming is an
atomic queued -> processing update, so two workers never ingest the same document.
"""
from __future__ import annotations

import logging
import os
import queue
import socket
import threading
from collections.abc import Callable
from datetime import timedelta

from rag.ingestion import IngestionPipeline
from rag.sandbox import warm_up
from rag.repository import WORKER_ID, DocumentRepository, DocumentView

log = logging.getLogger(__name__)


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


class IngestionWorkers:
    def __init__(self, pipeline: IngestionPipeline, repository: DocumentRepository, threads: int = 1,
                 stale_s: int = 120, sweep_s: float = 5.0) -> None:
        self._pipeline = pipeline
        self._repository = repository
        self._threads = max(1, threads)
        self._stale = timedelta(seconds=stale_s)
        self._sweep_s = sweep_s
        self._queue: queue.Queue[str] = queue.Queue()
        self._pending: set[str] = set()
        self._pending_lock = threading.Lock()
        self._stop = threading.Event()
        self._started = False
        self._start_lock = threading.Lock()

    def enqueue(self, document_id: str) -> None:
        with self._pending_lock:
            if document_id in self._pending:
                return
            self._pending.add(document_id)
        self._queue.put(document_id)

    def run_now(self, document_id: str, on_progress: Callable[[float], None] | None = None) -> DocumentView | None:
        """Ingest in the calling thread (the CLI); None when another worker holds the document."""
        return self._pipeline.run(document_id, on_progress)

    def depth(self) -> int:
        return self._queue.qsize()

    def start(self) -> None:
        """Start the threads once; safe to call from every request."""
        with self._start_lock:
            if self._started:
                return
            self._started = True
        threading.Thread(target=warm_up, name="parser-warm-up", daemon=True).start()
        self.sweep()
        for number in range(self._threads):
            threading.Thread(target=self._work, name=f"ingest-{number}", daemon=True).start()
        threading.Thread(target=self._sweep_forever, name="ingest-sweeper", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        for _ in range(self._threads):
            self._queue.put("")

    def sweep(self) -> None:
        """Requeue abandoned jobs and make sure every queued document is on the in-memory queue."""
        for document_id in self._repository.requeue_abandoned(self._stale, worker_alive):
            log.warning("document %s was left processing by a dead worker; ingesting it again", document_id)
        for document_id in self._repository.queued_ids():
            self.enqueue(document_id)

    def _sweep_forever(self) -> None:
        while not self._stop.wait(self._sweep_s):
            try:
                self.sweep()
            except Exception:  # noqa: BLE001 - the sweeper must outlive a database hiccup
                log.exception("ingestion sweep failed")

    def _work(self) -> None:
        while not self._stop.is_set():
            document_id = self._queue.get()
            with self._pending_lock:
                self._pending.discard(document_id)
            if document_id and not self._stop.is_set():
                try:
                    self._pipeline.run(document_id)
                except Exception:  # noqa: BLE001 - e.g. the database is briefly unavailable
                    log.exception("ingestion worker error on %s", document_id)
