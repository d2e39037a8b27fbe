"""Housekeeping (issue 30, point 5): compaction that reports the bytes it gave back, search
statistics for the admins, a resource log line, and a rotated log file - through the real app."""
from __future__ import annotations

import logging
import stat

from tests.conftest import assert_error, search, upload


def test_compaction_gives_back_the_space_of_deleted_documents_and_says_how_much(app, client, users, tmp_path):
    alice, admin = users.register(), users.admin()
    big = tmp_path / "ledger.md"
    big.write_text("\n\n".join(f"## Entry {n}\n\nCargo ledger line {n}: {n * 7} crates of pears were loaded at "
                               f"berth {n % 40} by the night crew of the harbour." for n in range(1500)))
    document = upload(client, alice, big).get_json()["document"]
    assert document["status"] == "ready" and document["chunks"] > 50
    assert client.delete(f"/documents/{document['id']}", headers=alice.headers).status_code == 204
    run = client.post("/admin/maintenance/compact_storage", headers=admin.headers).get_json()
    assert run["task"] == "compact_storage" and run["outcome"] == "ok", run
    reclaimed = dict(part.rsplit(" ", 1) for part in run["detail"].split("(", 1)[1].rstrip(")").split(", "))
    assert set(reclaimed) == {"app.db", "keywords.db"}, run["detail"]  # Chroma's file: only offline
    assert int(reclaimed["keywords.db"]) > 0, run["detail"]
    assert run["detail"].startswith(f"reclaimed {sum(int(v) for v in reclaimed.values())} bytes")
    again = client.post("/admin/maintenance/compact_storage", headers=admin.headers).get_json()
    assert again["outcome"] == "ok" and int(again["detail"].split()[1]) < int(run["detail"].split()[1])
    assert client.get("/health").get_json()["maintenance"]["compact_storage"]["every_s"] == 86400
    assert search(client, alice, "cargo ledger pears") == []  # the stores read on after it


def test_search_statistics_count_each_users_searches_and_answers(app, client, users, samples):
    alice, bob, admin = users.register(), users.register(), users.admin()
    upload(client, alice, samples["md"])
    for _ in range(3):
        search(client, alice, "How do I reset the router?")
    search(client, bob, "anything at all")
    assert_error(client.get("/stats/search", headers=alice.headers), 403)
    stats = client.get("/stats/search", headers=admin.headers).get_json()
    assert stats["searches"] == 4 and 0 < stats["mean_s"] <= stats["p95_s"]
    assert [(row["username"], row["searches"]) for row in stats["per_user"]] == [(alice.username, 3),
                                                                                  (bob.username, 1)]
    assert all(0 < row["mean_s"] <= row["p95_s"] for row in stats["per_user"] if row["username"] == alice.username)


def test_a_resource_line_is_logged_and_a_log_file_is_private_and_rotated(make_app, tmp_path, caplog):
    log_file = tmp_path / "logs" / "docchat.log"
    app = make_app(log_file=str(log_file), log_file_max_mb=1, log_file_backups=2)
    admin_client = app.test_client()
    from tests.conftest import Users

    admin = Users(app, admin_client).admin()
    with caplog.at_level(logging.INFO, logger="maintenance.schedule"):
        run = admin_client.post("/admin/maintenance/resource_log", headers=admin.headers).get_json()
    assert run["outcome"] == "ok" and "cpu " in run["detail"] and "process rss " in run["detail"]
    assert "ram " in run["detail"] and "GiB" in run["detail"]
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600
    try:
        logger = logging.getLogger("docchat.test")
        for number in range(12000):  # about 1.4 MB of lines: past the 1 MB limit once
            logger.warning("line %05d of the rotation test, padded to a realistic length of a log line ....", number)
        rotated = log_file.with_name("docchat.log.1")
        assert rotated.exists() and stat.S_IMODE(rotated.stat().st_mode) == 0o600
        assert "line 11999" in log_file.read_text() and log_file.stat().st_size < 1024 * 1024
        assert "maintenance: resource_log took" in rotated.read_text()
        assert not log_file.with_name("docchat.log.3").exists()
    finally:
        for handler in [h for h in logging.getLogger().handlers if getattr(h, "baseFilename", "") == str(log_file)]:
            logging.getLogger().removeHandler(handler)
            handler.close()
