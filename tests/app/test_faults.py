"""Faults of the shared services: the Chroma server stopped, Redis restarted, a web worker killed
mid-stream. While down: clear 503s; after: full recovery, nothing duplicated or lost."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from fixtures.server import call, free_port, start_server
from rag.spaces import Space
from tests.conftest import Users, assert_error, search, upload, wait_for


def test_a_stopped_chroma_server_gives_503s_and_loses_nothing(make_app, chroma, samples, caplog):
    app = make_app(chroma_host="127.0.0.1", chroma_port=chroma.port, job_stale_s=2)
    from app import start_background_work

    start_background_work(app)
    client = app.test_client()
    alice = Users(app, client).register()
    kept = upload(client, alice, samples["md"]).get_json()["document"]
    chroma.stop()
    try:
        assert_error(client.post("/search", json={"query": "reset the router"}, headers=alice.headers),
                     503, "VECTOR_STORE_UNAVAILABLE")
        assert_error(client.delete(f"/documents/{kept['id']}", headers=alice.headers), 503, "VECTOR_STORE_UNAVAILABLE")
        accepted = upload(client, alice, samples["docx"], wait=False)
        assert accepted.status_code == 202  # taken: it waits in the queue for the store to return
        document_id = accepted.get_json()["document"]["id"]
        released = f"vector store unavailable while ingesting {document_id}"
        wait_for(lambda: sum(released in record.getMessage() for record in caplog.records) >= 2, 120,
                 "a worker to try the upload twice while Chroma is down (the sweeper resends it)")
        status = client.get(f"/documents/{document_id}", headers=alice.headers).get_json()["document"]["status"]
        assert status in ("queued", "processing"), status  # not failed: the outage is not the document's fault
    finally:
        chroma.start()
    wait_for(lambda: client.get(f"/documents/{document_id}", headers=alice.headers).get_json()["document"]["status"]
             == "ready", 120, "the queued upload to be ingested once Chroma is back")
    assert search(client, alice, "bakery revenue")[0]["document_id"] == document_id
    assert client.get(f"/documents/{kept['id']}", headers=alice.headers).status_code == 200  # the failed delete kept it
    vectors = app.extensions["docchat"].vectors
    for document in client.get("/documents", headers=alice.headers).get_json()["documents"]:
        assert vectors.count(Space.personal(alice.id), document["id"]) == document["chunks"]  # nothing doubled


@pytest.fixture
def redis_process(tmp_path: Path):
    port = free_port()
    command = ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(tmp_path)]
    if subprocess.run(["which", "redis-server"], capture_output=True).returncode != 0:
        pytest.skip("redis-server is not installed")

    def start() -> subprocess.Popen:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        wait_for(lambda: _pings(redis, port), 20, "redis to start")
        return process

    handle = {"process": start(), "start": start, "url": f"redis://127.0.0.1:{port}/0"}
    yield handle
    handle["process"].kill()


def _pings(redis, port: int) -> bool:
    try:
        return bool(redis.Redis(port=port, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


def test_a_redis_restart_gives_503s_then_everything_works_again(make_app, redis_process, samples):
    from app import start_background_work

    app = make_app(ratelimit_storage_uri=redis_process["url"], ingest_queue_url=redis_process["url"],
                   ratelimit_key_prefix=f"faults{os.getpid()}{time.time_ns()}")
    start_background_work(app)
    client = app.test_client()
    alice = Users(app, client).register()
    assert upload(client, alice, samples["txt"]).status_code == 201
    redis_process["process"].kill()
    redis_process["process"].wait()
    assert_error(client.post("/auth/login", json={"username": alice.username, "password": alice.password}),
                 503, "STORAGE_UNAVAILABLE")
    assert_error(client.get("/documents", headers=alice.headers), 503, "STORAGE_UNAVAILABLE")
    redis_process["process"] = redis_process["start"]()
    assert client.get("/documents", headers=alice.headers).status_code == 200
    document = upload(client, alice, samples["csv"]).get_json()["document"]
    assert document["status"] == "ready"  # the queue's consumer found Redis again
    assert len(client.get("/documents", headers=alice.headers).get_json()["documents"]) == 2


def test_a_web_worker_killed_mid_stream_is_replaced_and_the_session_still_reads(server_dir, model_cache_dir):
    import psutil
    import requests

    port, log = free_port(), server_dir / "server.log"
    server = start_server(server_dir / "data", port, log, MODEL_CACHE_DIR=str(model_cache_dir))
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: call(f"{base}/health")[0] == 200, 600, "the model to load")
        call(f"{base}/auth/register", {"username": "kim", "password": "correct horse battery"})
        token = call(f"{base}/auth/login", {"username": "kim", "password": "correct horse battery"})[1]["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        path = server_dir / "ferry.txt"
        path.write_text("Harbour timetable.\n\nThe harbour ferry leaves at 7:45 every morning from pier two.\n")
        with path.open("rb") as handle:
            assert requests.post(f"{base}/upload?wait=true", headers=headers, files={"file": handle},
                                 timeout=300).status_code == 201
        session = call(f"{base}/chat/start", {}, token=token)[1]["sessionId"]
        body = {"sessionId": session, "message": "Tell me a long story about the harbour ferry and pier two.",
                "stream": True, "generation": {"num_beams": 1, "temperature": 0, "max_new_tokens": 300}}
        worker = psutil.Process(server.pid).children()[0]
        with requests.post(f"{base}/chat/message", json=body, headers=headers, stream=True, timeout=300) as response:
            lines = response.iter_lines()
            while b"event: token" not in next(lines):
                pass
            os.kill(worker.pid, signal.SIGKILL)  # the worker dies mid-answer
            with pytest.raises(requests.exceptions.RequestException):
                for _ in lines:
                    pass
        wait_for(lambda: any(child.pid != worker.pid for child in psutil.Process(server.pid).children()), 60,
                 "gunicorn to start a new worker")
        wait_for(lambda: call(f"{base}/health")[0] == 200, 600, "the new worker to load the model")
        status, stored = call(f"{base}/chat/sessions/{session}", token=token)
        assert status == 200
        before = [m["role"] for m in stored["messages"]]
        assert before == ["user", "assistant"] * (len(before) // 2)  # whole turns only, none torn
        # The new worker's first question also loads the embedder: more than the usual 10 s on a busy machine.
        status, again = call(f"{base}/chat/message", {"sessionId": session, "message": "When does the ferry leave?",
                                                      "generation": {"num_beams": 1, "temperature": 0,
                                                                     "max_new_tokens": 24}}, token=token, timeout=120)
        assert status == 200 and "7:45" in again["reply"]["content"]
        after = [m["role"] for m in call(f"{base}/chat/sessions/{session}", token=token)[1]["messages"]]
        assert after == before + ["user", "assistant"]  # the session reads on after the killed worker
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_the_server_starts_while_the_chroma_server_is_down_and_serves_once_it_is_up(make_app, chroma, samples):
    """README: the server also starts while the Chroma server is down (it connects on first use)."""
    from app import start_background_work

    chroma.stop()  # down before the app exists
    app = make_app(chroma_host="127.0.0.1", chroma_port=chroma.port, job_stale_s=2)
    start_background_work(app)
    client = app.test_client()
    alice = Users(app, client).register()  # accounts work: they need no vector store
    try:
        assert client.get("/documents", headers=alice.headers).status_code == 200
        assert_error(client.post("/search", json={"query": "reset the router"}, headers=alice.headers),
                     503, "VECTOR_STORE_UNAVAILABLE")
        accepted = upload(client, alice, samples["md"], wait=False)
        assert accepted.status_code == 202
        document_id = accepted.get_json()["document"]["id"]
    finally:
        chroma.start()
    wait_for(lambda: client.get(f"/documents/{document_id}", headers=alice.headers).get_json()["document"]["status"]
             == "ready", 120, "the upload to be ingested once Chroma is up")
    assert search(client, alice, "reset the router")[0]["document_id"] == document_id
