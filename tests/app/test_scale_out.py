"""The scale-out settings on real engines: 4 gunicorn workers sharing PostgreSQL and Redis.

Limits must be exact across workers (the N+1th request is 429 whichever worker takes it), and a
logout must hold in every worker at once."""
from __future__ import annotations

import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from fixtures.server import call, free_port, start_server
from rag.spaces import Space
from tests.conftest import redis_url, wait_for

WORKERS = 4
LOGIN_LIMIT = 5


@pytest.fixture
def stack_env(server_dir, fresh_postgres_url, chroma_server) -> dict[str, str]:
    """The scale-out settings: PostgreSQL, Redis (limits and the job queue), a Chroma server."""
    from ingest.jobs import make_queue

    queue_url = redis_url()
    make_queue(queue_url, server_dir / "unused").flush()  # no job left by an earlier test
    return {"DATABASE_URL": fresh_postgres_url, "CHROMA_HOST": "127.0.0.1", "CHROMA_PORT": str(chroma_server),
            "RATELIMIT_STORAGE_URI": queue_url, "INGEST_QUEUE_URL": queue_url, "INGEST_IN_PROCESS": "false",
            "JWT_SECRET_KEY": "k3Jd8Qw2Zx7Vb5Nm1Lp9Rt4Yh6Gf0Cs2Ae", "DATA_DIR": str(server_dir / "data"),
            "HF_HUB_OFFLINE": "1", "DO_NOT_TRACK": "1"}


@pytest.fixture
def four_workers(server_dir, stack_env):
    port, log = free_port(), server_dir / "server.log"
    settings = {key: value for key, value in stack_env.items() if key != "DATA_DIR"}
    server = start_server(server_dir / "data", port, log, WEB_WORKERS=str(WORKERS), **settings,
                          RATELIMIT_KEY_PREFIX=f"scale{os.getpid()}{time.time_ns()}",
                          RATELIMIT_LOGIN=f"{LOGIN_LIMIT} per minute", RATELIMIT_REGISTER="100 per minute",
                          LOAD_MODEL_AT_START="false")
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline and log.read_text().count("Booting worker") < WORKERS:
        time.sleep(0.2)
    assert log.read_text().count("Booting worker") == WORKERS, log.read_text()[-2000:]
    yield base
    server.terminate()
    server.wait(timeout=30)


def test_limits_are_exact_across_four_workers_with_redis(four_workers):
    attempts = 3 * LOGIN_LIMIT
    with ThreadPoolExecutor(max_workers=attempts) as pool:
        statuses = list(pool.map(lambda _: call(f"{four_workers}/auth/login",
                                                {"username": "nobody", "password": "wrong password"})[0],
                                 range(attempts)))
    assert statuses.count(401) == LOGIN_LIMIT and statuses.count(429) == attempts - LOGIN_LIMIT, statuses


def test_a_logout_holds_in_every_worker(four_workers):
    assert call(f"{four_workers}/auth/register", {"username": "sam", "password": "correct horse battery"})[0] == 201
    token = call(f"{four_workers}/auth/login", {"username": "sam", "password": "correct horse battery"})[1]["access_token"]
    assert call(f"{four_workers}/auth/logout", {}, token=token)[0] == 200
    with ThreadPoolExecutor(max_workers=4 * WORKERS) as pool:
        answers = list(pool.map(lambda _: call(f"{four_workers}/auth/me", token=token), range(4 * WORKERS)))
    assert all(status == 401 and body["code"] == "TOKEN_REVOKED" for status, body in answers), answers


def test_several_workers_on_the_embedded_stores_refuse_to_start(server_dir):
    from fixtures.server import GUNICORN, ROOT

    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "CHROMA_HOST")}
    env.update(WEB_WORKERS="3", DATA_DIR=str(server_dir / "data"), PORT=str(free_port()))
    result = subprocess.run([str(GUNICORN), "-c", "gunicorn.conf.py", "wsgi:app"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "WEB_WORKERS=3 needs the scale-out settings DATABASE_URL, CHROMA_HOST" in result.stdout + result.stderr


def start_ingest_worker(stack_env: dict[str, str], log_path) -> subprocess.Popen[bytes]:
    """`flask ingest-worker`, as an operator starts one beside the web workers."""
    import sys
    from pathlib import Path

    from fixtures.server import ROOT

    flask = Path(sys.executable).with_name("flask")
    return subprocess.Popen([str(flask), "--app", "app", "ingest-worker"], cwd=ROOT, env={**os.environ, **stack_env},
                            stdout=log_path.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)


def _account(base: str) -> str:
    assert call(f"{base}/auth/register", {"username": "ines", "password": "correct horse battery"})[0] == 201
    return call(f"{base}/auth/login", {"username": "ines", "password": "correct horse battery"})[1]["access_token"]


def _upload(base: str, token: str, path) -> dict:
    import requests

    with open(path, "rb") as handle:
        response = requests.post(f"{base}/upload", headers={"Authorization": f"Bearer {token}"},
                                 files={"file": (path.name, handle)}, timeout=60)
    assert response.status_code == 202, response.text
    return response.json()["document"]


def _document(base: str, token: str, document_id: str) -> dict:
    return call(f"{base}/documents/{document_id}", token=token)[1]["document"]


def test_ingestion_runs_in_separate_worker_processes_and_survives_kill_9(four_workers, stack_env, server_dir, samples):
    import signal

    from fixtures.samples import make_pdf

    token = _account(four_workers)
    worker = start_ingest_worker(stack_env, server_dir / "worker.log")
    try:
        small = [_upload(four_workers, token, samples[kind]) for kind in ("pdf", "md", "csv")]
        wait_for(lambda: all(_document(four_workers, token, d["id"])["status"] == "ready" for d in small), 180,
              "the uploads to be ingested by the worker process")
        big = _upload(four_workers, token, make_pdf(server_dir / "long.pdf", fact_page=150, pages=200))
        wait_for(lambda: _document(four_workers, token, big["id"])["progress"] > 0.3, 180, "ingestion to be under way")
        os.killpg(worker.pid, signal.SIGKILL)  # the worker dies mid-document
        worker.wait(timeout=30)
        assert _document(four_workers, token, big["id"])["status"] == "processing"
        worker = start_ingest_worker(stack_env, server_dir / "worker.log")
        wait_for(lambda: _document(four_workers, token, big["id"])["status"] == "ready", 300,
              "the new worker to finish the document")
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
    document = _document(four_workers, token, big["id"])
    import chromadb

    store = chromadb.HttpClient(host="127.0.0.1", port=int(stack_env["CHROMA_PORT"]))
    from rag.vector_store import VectorStore

    user_id = call(f"{four_workers}/auth/me", token=token)[1]["id"]
    stored = store.get_collection(VectorStore.collection_name(Space.personal(user_id))).get(where={"document_id": big["id"]}, include=[])
    assert len(stored["ids"]) == document["chunks"] > 100  # resumed clean: nothing lost, nothing twice
