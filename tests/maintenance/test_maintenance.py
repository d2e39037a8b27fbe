"""The maintenance schedule: each task runs, is logged with its duration and outcome, shows in
/health, and does its job (retention, orphaned and stale chunks); the leak watch warns."""
from __future__ import annotations

import logging
from datetime import timedelta

import numpy as np

from common.database import utcnow
from maintenance.schedule import LeakWatch
from rag.spaces import Space
from rag.types import Chunk
from sessions.models import ChatSession
from tests.conftest import Users, upload, wait_for


def _vectors(count: int) -> np.ndarray:
    return np.ones((count, 384), dtype=np.float32) / np.sqrt(384)


def test_scheduled_tasks_clean_up_and_report_in_health(make_app, samples, caplog):
    from app import start_background_work

    app = make_app(chat_retention_days=30, maintenance_interval_s=1)
    client = app.test_client()
    alice = Users(app, client).register()
    document = upload(client, alice, samples["md"]).get_json()["document"]
    svc = app.extensions["docchat"]
    idle, _ = svc.sessions.start(alice.id, "old")
    with svc.db.session() as db:
        db.query(ChatSession).filter_by(public_id=idle.id).one().last_active = utcnow() - timedelta(days=40)
    svc.vectors.add(Space.personal(alice.id), "deleted-document", [Chunk("orphan", 0, 1)], _vectors(1))
    svc.vectors.add(Space.personal(alice.id), document["id"], [Chunk("stale leftover", document["chunks"] + 3, 2)], _vectors(1))
    svc.revocations.revoke("expired-login", alice.id, utcnow() - timedelta(days=1))  # its tokens expired anyway
    svc.revocations.revoke("live-login", alice.id, utcnow() + timedelta(days=1))

    with caplog.at_level(logging.INFO, logger="maintenance.schedule"):
        start_background_work(app)  # (the first request started it already: these run on the next round)
        wait_for(lambda: svc.vectors.chunk_counts(Space.personal(alice.id)) == {document["id"]: document["chunks"]}
                 and not svc.sessions.of_user(alice.id), 30, "the orphan, the stale chunk and the idle session to go")
        wait_for(lambda: "removed 1 stale chunk" in caplog.text, 10, "the runs to be logged")
        wait_for(lambda: "forgot 1 revoked login" in caplog.text, 10, "the expired revocation to be pruned")
    assert not svc.revocations.is_revoked("expired-login") and svc.revocations.is_revoked("live-login")
    maintenance = client.get("/health").get_json()["maintenance"]
    assert set(maintenance) == {"session_retention", "orphaned_chunks", "stale_chunks", "revoked_logins", "memory_watch",
                                "alerts", "compact_storage", "resource_log", "engine_watchdog"}
    assert "last_run" not in maintenance["compact_storage"]  # first run one interval after start
    assert all(task["outcome"] == "ok" and task["duration_s"] >= 0 for name, task in maintenance.items()
               if name != "compact_storage")
    assert maintenance["memory_watch"]["every_s"] == 300
    logged = " ".join(record.getMessage() for record in caplog.records)
    assert "maintenance: orphaned_chunks took" in logged and "removed the chunks of 1 deleted document" in logged
    assert "removed 1 stale chunk" in logged


def test_the_leak_watch_warns_only_on_memory_rising_every_time():
    readings = iter([100, 110, 120, 130, 140, 150, 160, 150, 160, 170])
    watch = LeakWatch(lambda: {"process RSS": next(readings) * 2**20}, checks=6)
    outcomes = [watch.sample() for _ in range(10)]
    assert outcomes[:5] == ["memory steady"] * 5
    assert "rose in each of the last 6 checks, 100 MiB to 150 MiB" in outcomes[5]
    assert outcomes[7] == "memory steady"  # it fell once: no longer a steady rise
    steady = LeakWatch(lambda: {"process RSS": 100 * 2**20}, checks=3)
    assert {steady.sample() for _ in range(5)} == {"memory steady"}
