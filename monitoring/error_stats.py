"""Counts of errors by code and the most recent ones, for GET /stats/errors."""
from __future__ import annotations

import threading
from collections import Counter, deque
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any


@dataclass(frozen=True)
class ErrorEvent:
    """What an admin may see of an error: never a request body, header or token."""

    time: str
    method: str
    route: str
    status: int
    code: str
    message: str


class ErrorStats:
    """Per-process, thread-safe counters (a shared store arrives with the scale-out work)."""

    def __init__(self, recent_kept: int = 100) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._recent: deque[ErrorEvent] = deque(maxlen=recent_kept)

    def record(self, *, method: str, route: str, status: int, code: str, message: str) -> None:
        event = ErrorEvent(
            time=datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            method=method,
            route=route,
            status=status,
            code=code,
            message=message[:300],
        )
        with self._lock:
            self._counts[code] += 1
            self._recent.append(event)

    def snapshot(self) -> dict[str, Any]:
        """Totals, counts per code, and recent events newest first."""
        with self._lock:
            return {
                "total_errors": sum(self._counts.values()),
                "error_types": dict(self._counts),
                "recent": [asdict(event) for event in reversed(self._recent)],
            }
