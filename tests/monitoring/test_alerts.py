"""Alerts (issue 30, point 4): each rule driven through the real app, its event POSTed as JSON to a
webhook receiver running here, once per episode, with retries that never hold a request up."""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from monitoring.alerts import Alerts, Rule, Webhook
from tests.conftest import Users, assert_error

EVENT_FIELDS = {"event", "level", "value", "threshold", "time", "message", "server"}


class Receiver:
    """A webhook endpoint on 127.0.0.1: records each JSON body; answers 500 to the first `fail`
    posts; holds each answer until `release` is set."""

    def __init__(self, fail: int = 0) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.posts = 0
        self.fail = fail
        self.release = threading.Event()
        self.release.set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.release.wait(30)
                receiver.posts += 1
                failing = receiver.posts <= receiver.fail
                if not failing:
                    receiver.bodies.append(body)
                self.send_response(500 if failing else 204)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def wait_for(self, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.bodies) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.bodies


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.release.set()
    found.server.shutdown()


def _run_alerts(client, admin) -> dict[str, Any]:
    response = client.post("/admin/maintenance/alerts", headers=admin.headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_each_alert_reaches_the_webhook_once_per_episode(make_app, receiver):
    """Process memory (warning at a threshold below this process's share), queue saturation (warning
    at 0: an idle queue is at 0), the error rate (20 answers of 503 from /health while no model is
    loaded) and a model that failed to load (a swap to a model whose weights are not here)."""
    app = make_app(alert_webhook_url=receiver.url, alert_memory_warning=0.0001, alert_memory_critical=0.99,
                   alert_queue_warning=0.0, alert_queue_critical=0.5)
    client = app.test_client()
    admin = Users(app, client).admin()
    for _ in range(20):
        assert client.get("/health").status_code == 503  # no model loaded: a server error, counted
    assert_error(client.post("/models/swap", json={"model": "qwen2.5-7b-instruct"}, headers=admin.headers),
                 422, "MODEL_LOAD_FAILED")
    run = _run_alerts(client, admin)
    assert run["outcome"] == "ok"
    events = {body["event"]: body for body in receiver.wait_for(4)}
    assert set(events) == {"process_memory", "queue_saturation", "error_rate", "model_failed"}, events
    assert all(set(body) == EVENT_FIELDS for body in events.values())
    assert events["process_memory"]["level"] == "warning" and events["process_memory"]["threshold"] == 0.0001
    assert 0.0001 <= events["process_memory"]["value"] < 0.99
    assert events["queue_saturation"] == {**events["queue_saturation"], "level": "warning", "value": 0.0}
    assert events["error_rate"]["level"] == "critical" and events["error_rate"]["value"] >= 20 / 25  # a few 2xx-4xx too
    assert events["model_failed"]["level"] == "critical" and events["model_failed"]["value"] == 1.0
    assert events["error_rate"]["time"].endswith("Z")
    _run_alerts(client, admin)  # the same episodes: nothing more is sent
    time.sleep(0.3)
    assert len(receiver.bodies) == 4
    health = client.get("/health").get_json()
    assert health["alerts"]["model_failed"]["level"] == "critical"
    assert "alert model_failed: critical" in health["problems"]


def test_an_episode_is_told_once_and_a_slow_or_failing_webhook_never_holds_the_check(receiver):
    reading = {"value": 0.5}
    receiver.fail = 2  # the first two tries of the first event fail: it is retried
    alerts = Alerts([Rule("process_memory", lambda: reading["value"], 0.8, 0.9, "process memory")],
                    Webhook(receiver.url, backoff_s=0.05))
    levels = []
    for value in (0.5, 0.85, 0.86, 0.95, 0.97, 0.95, 0.5, 0.4):
        reading["value"] = value
        alerts.check()
        levels.append(alerts.level("process_memory"))
    assert levels == ["ok", "warning", "warning", "critical", "critical", "critical", "ok", "ok"]
    sent = receiver.wait_for(3)
    assert [(body["level"], body["value"], body["threshold"]) for body in sent] == [
        ("warning", 0.85, 0.8), ("critical", 0.95, 0.9), ("resolved", 0.5, None)]
    assert receiver.posts == 5  # two failures, then the three events
    receiver.release.clear()  # the receiver now holds every answer
    reading["value"] = 0.99
    started = time.monotonic()
    assert alerts.check() == "process_memory critical"
    assert time.monotonic() - started < 1.0 and len(receiver.bodies) == 3  # checked before it was delivered
    receiver.release.set()
    assert receiver.wait_for(4)[-1]["level"] == "critical"
    alerts.close()


def test_gpu_memory_is_judged_only_where_there_is_a_gpu(app):
    import torch

    status = app.extensions["docchat"].alerts.status()
    app.extensions["docchat"].alerts.check()
    status = app.extensions["docchat"].alerts.status()
    if torch.cuda.is_available():
        assert 0 < status["gpu_memory"]["value"] <= 1
    else:
        assert status["gpu_memory"] == {"level": "ok", "value": None, "warning": 0.8, "critical": 0.9}


def test_only_admins_run_maintenance_and_an_unknown_task_is_404(app, client, users):
    user, admin = users.register(), users.admin()
    assert_error(client.post("/admin/maintenance/alerts", headers=user.headers), 403)
    body = assert_error(client.post("/admin/maintenance/defragment", headers=admin.headers), 404, "NOT_FOUND")
    assert "compact_storage" in body["error"]
