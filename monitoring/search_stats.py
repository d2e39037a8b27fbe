"""How searches go: count, mean and p95 seconds, in all and per user, for the admins' stats.

Every retrieval counts - POST /search, and the search behind each /chat answer and /v1 completion
with documents - timed from the query to the ranked chunks (embedding the query included).
Per process, like the error statistics; the times are the last RECENT_KEPT of each user and of all.
"""
from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Iterable
from typing import Any

RECENT_KEPT = 1000


def percentile(values: Iterable[float], share: float) -> float:
    """The nearest-rank `share` percentile (0.95: the p95); 0.0 for no values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


class SearchStats:
    def __init__(self, kept: int = RECENT_KEPT) -> None:
        self._kept = kept
        self._lock = threading.Lock()
        self._counts: Counter[int | None] = Counter()
        self._times: dict[int | None, deque[float]] = {}
        self._all: deque[float] = deque(maxlen=kept)

    def record(self, user_id: int | None, seconds: float) -> None:
        with self._lock:
            self._counts[user_id] += 1
            self._times.setdefault(user_id, deque(maxlen=self._kept)).append(seconds)
            self._all.append(seconds)

    def snapshot(self) -> dict[str, Any]:
        """{"searches", "mean_s", "p95_s", "per_user": [{"user_id", "searches", "mean_s", "p95_s"}]},
        the busiest users first."""
        with self._lock:
            per_user = [{"user_id": user_id, **_figures(self._counts[user_id], self._times[user_id])}
                        for user_id, _ in self._counts.most_common() if user_id is not None]
            return {**_figures(sum(self._counts.values()), self._all), "per_user": per_user}


def _figures(count: int, times: deque[float]) -> dict[str, Any]:
    mean = sum(times) / len(times) if times else 0.0
    return {"searches": count, "mean_s": round(mean, 4), "p95_s": round(percentile(times, 0.95), 4)}
