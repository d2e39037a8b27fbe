"""The retention sweeper: applies CHAT_RETENTION_DAYS once at start and then every hour (off at 0)."""
from __future__ import annotations

import logging
import threading

from sessions.service import SessionService

log = logging.getLogger(__name__)


class RetentionSweeper:
    def __init__(self, sessions: SessionService, interval_s: float = 3600.0) -> None:
        self._sessions = sessions
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._started = False
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start once; does nothing while the policy is off."""
        with self._lock:
            if self._started or self._sessions.retention_days <= 0:
                return
            self._started = True
        threading.Thread(target=self._run, name="chat-retention", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while True:
            try:
                self._sessions.expire_inactive()
            except Exception:  # noqa: BLE001 - the sweeper must outlive a database hiccup
                log.exception("chat retention sweep failed")
            if self._stop.wait(self._interval_s):
                return
