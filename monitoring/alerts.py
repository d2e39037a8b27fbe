"""Alerts: readings checked against warning and critical thresholds, each episode told once.

A rule reads one figure (a share from 0 to 1: process memory of the machine's RAM, the fullest
GPU's memory, the share of server errors among recent requests, how full the generation queue is,
whether a model failed to load). Its level is ok, warning or critical. A change of level - into a
warning, up to critical, back to ok - is an event: logged once (WARNING, CRITICAL or INFO for
"resolved") and, with ALERT_WEBHOOK_URL set, POSTed there as JSON

    {"event": "process_memory", "level": "critical", "value": 0.93, "threshold": 0.9,
     "time": "2026-12-06T01:40:00Z", "message": "...", "server": "docchat"}

by a background sender that retries (1, 2, 4 s) and never blocks a request; staying at a level
says nothing more, so an episode is one message, not one per check.
"""
from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

log = logging.getLogger(__name__)

OK, WARNING, CRITICAL = "ok", "warning", "critical"
RESOLVED = "resolved"  # the level an event reports when a rule goes back to ok
WEBHOOK_TRIES = 4
WEBHOOK_BACKOFF_S = 1.0  # doubled after each failed try
WEBHOOK_TIMEOUT_S = 5.0
WEBHOOK_QUEUE = 100  # events waiting to be sent; past it the oldest is dropped (and logged)


@dataclass(frozen=True)
class Rule:
    """`read()` gives the figure (None: nothing to judge now, e.g. no GPU); at or over `warning`
    (or `critical`) it is that level."""

    name: str
    read: Callable[[], float | None]
    warning: float
    critical: float
    describe: str  # what the figure is, for the message: "process memory of the machine's RAM"

    def level(self, value: float) -> tuple[str, float | None]:
        if value >= self.critical:
            return CRITICAL, self.critical
        if value >= self.warning:
            return WARNING, self.warning
        return OK, None


@dataclass(frozen=True)
class AlertEvent:
    event: str
    level: str  # warning, critical or resolved
    value: float
    threshold: float | None
    time: str
    message: str

    def payload(self) -> dict[str, Any]:
        return {"event": self.event, "level": self.level, "value": round(self.value, 4),
                "threshold": self.threshold, "time": self.time, "message": self.message, "server": "docchat"}


class Webhook:
    """Sends events to a URL from its own thread, in order, with retries; `send` never waits."""

    def __init__(self, url: str, tries: int = WEBHOOK_TRIES, backoff_s: float = WEBHOOK_BACKOFF_S) -> None:
        self.url, self._tries, self._backoff_s = url, tries, backoff_s
        self._queue: queue.Queue[AlertEvent | None] = queue.Queue(WEBHOOK_QUEUE)
        self._thread = threading.Thread(target=self._send_forever, name="alert-webhook", daemon=True)
        self._thread.start()

    def send(self, event: AlertEvent) -> None:
        while True:
            try:
                self._queue.put_nowait(event)
                return
            except queue.Full:
                try:
                    dropped = self._queue.get_nowait()
                    if dropped is not None:
                        log.warning("alert webhook is behind: dropped the %s %s event of %s", dropped.event,
                                    dropped.level, dropped.time)
                except queue.Empty:
                    pass

    def close(self) -> None:
        """Stop after the events already queued (at once when the queue is full: the thread is a daemon)."""
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass

    def _send_forever(self) -> None:
        while (event := self._queue.get()) is not None:
            self._deliver(event)

    def _deliver(self, event: AlertEvent) -> None:
        body = json.dumps(event.payload()).encode()
        wait = self._backoff_s
        for attempt in range(1, self._tries + 1):
            request = urllib.request.Request(self.url, data=body, method="POST",
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_S) as response:  # noqa: S310 - an admin's URL
                    if response.status < 300:
                        return
                    problem = f"HTTP {response.status}"
            except Exception as exc:  # noqa: BLE001 - any failure is retried, then logged
                problem = f"{type(exc).__name__}: {exc}"
            if attempt < self._tries:
                time.sleep(wait)
                wait *= 2
        log.error("alert webhook: the %s %s event could not be delivered after %d tries (%s)",
                  event.event, event.level, self._tries, problem)


class Alerts:
    """The rules' current levels, their events (newest last) and the webhook they go to."""

    def __init__(self, rules: list[Rule], webhook: Webhook | None = None, kept: int = 50) -> None:
        self._rules = rules
        self._webhook = webhook
        self._levels: dict[str, str] = {rule.name: OK for rule in rules}
        self._values: dict[str, float] = {}
        self.events: deque[AlertEvent] = deque(maxlen=kept)
        self._lock = threading.Lock()

    def check(self) -> str:
        """Read every rule once; returns a one-line outcome (the maintenance task's detail)."""
        with self._lock:
            for rule in self._rules:
                try:
                    value = rule.read()
                except Exception:  # noqa: BLE001 - one broken reading must not stop the others
                    log.exception("alert rule %s could not read its value", rule.name)
                    continue
                if value is not None:
                    self._judge(rule, value)
            active = {name: level for name, level in self._levels.items() if level != OK}
        return ", ".join(f"{name} {level}" for name, level in sorted(active.items())) or "all ok"

    def level(self, name: str) -> str:
        return self._levels.get(name, OK)

    def close(self) -> None:
        if self._webhook is not None:
            self._webhook.close()

    def status(self) -> dict[str, Any]:
        """Each rule's level and last value, for /health."""
        return {rule.name: {"level": self._levels[rule.name], "value": round(self._values[rule.name], 4)
                            if rule.name in self._values else None, "warning": rule.warning,
                            "critical": rule.critical} for rule in self._rules}

    def problems(self) -> list[str]:
        """Rules at warning or critical (they make /health degraded)."""
        return [f"alert {name}: {level}" for name, level in self._levels.items() if level != OK]

    def _judge(self, rule: Rule, value: float) -> None:
        self._values[rule.name] = value
        level, threshold = rule.level(value)
        before = self._levels[rule.name]
        if level == before:
            return
        self._levels[rule.name] = level
        now = datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
        if level == OK:
            event = AlertEvent(rule.name, RESOLVED, value, None, now, f"{rule.describe} back to {value:.2f}")
            log.info("alert resolved: %s", event.message)
        else:
            event = AlertEvent(rule.name, level, value, threshold, now,
                               f"{rule.describe} at {value:.2f}, at or over the {level} threshold {threshold}")
            log.log(logging.CRITICAL if level == CRITICAL else logging.WARNING, "alert %s: %s", level, event.message)
        self.events.append(event)
        if self._webhook is not None:
            self._webhook.send(event)


class RequestWindow:
    """Requests answered and server errors (5xx) among them over the last `window_s` seconds."""

    def __init__(self, window_s: float = 300.0, min_requests: int = 20) -> None:
        self._window_s, self._min_requests = window_s, min_requests
        self._seen: deque[tuple[float, bool]] = deque()
        self._lock = threading.Lock()

    def record(self, status: int) -> None:
        now = time.monotonic()
        with self._lock:
            self._seen.append((now, status >= 500))
            self._forget(now)

    def error_rate(self) -> float | None:
        """The share of 5xx answers, or None under `min_requests` requests (too few to judge)."""
        with self._lock:
            self._forget(time.monotonic())
            if len(self._seen) < self._min_requests:
                return None
            return sum(1 for _, failed in self._seen if failed) / len(self._seen)

    def _forget(self, now: float) -> None:
        while self._seen and self._seen[0][0] < now - self._window_s:
            self._seen.popleft()
