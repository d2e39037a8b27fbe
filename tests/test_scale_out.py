"""The scale-out settings on real engines: 4 gunicorn workers sharing PostgreSQL and Redis.

Limits must be exact across workers (the N+1th request is 429 whichever worker takes it), and a
logout must hold in every worker at once."""
from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import redis_url
from tests.test_server import call, free_port, start_server

WORKERS = 4
LOGIN_LIMIT = 5


@pytest.fixture
def four_workers(server_dir, fresh_postgres_url, chroma_server):
    port, log = free_port(), server_dir / "server.log"
    server = start_server(server_dir / "data", port, log, WEB_WORKERS=str(WORKERS), DATABASE_URL=fresh_postgres_url,
                          CHROMA_HOST="127.0.0.1", CHROMA_PORT=str(chroma_server),
                          RATELIMIT_STORAGE_URI=redis_url(), RATELIMIT_KEY_PREFIX=f"scale{os.getpid()}{time.time_ns()}",
                          RATELIMIT_LOGIN=f"{LOGIN_LIMIT} per minute", RATELIMIT_REGISTER="100 per minute",
                          LOAD_MODEL_AT_START="false", JWT_SECRET_KEY="k3Jd8Qw2Zx7Vb5Nm1Lp9Rt4Yh6Gf0Cs2Ae")
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
    import subprocess

    from tests.test_server import GUNICORN, ROOT

    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "CHROMA_HOST")}
    env.update(WEB_WORKERS="3", DATA_DIR=str(server_dir / "data"), PORT=str(free_port()))
    result = subprocess.run([str(GUNICORN), "-c", "gunicorn.conf.py", "wsgi:app"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "WEB_WORKERS=3 needs the scale-out settings DATABASE_URL, CHROMA_HOST" in result.stdout + result.stderr
