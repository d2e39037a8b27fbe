"""The real server as `make run` starts it: gunicorn on a port, first admin printed once, login over HTTP."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = Path(sys.executable).with_name("gunicorn")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def call(url: str, body: dict | None = None, token: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def start_server(data_dir: Path, port: int, log: Path, **settings: str) -> subprocess.Popen:
    """`make run`'s command, in its own process group (so a test can kill -9 all of it)."""
    env = {**os.environ, "DATA_DIR": str(data_dir), "PORT": str(port), "HF_HUB_OFFLINE": "1", "DO_NOT_TRACK": "1",
           **settings}
    env.pop("JWT_SECRET_KEY", None)
    handle = log.open("ab")
    server = subprocess.Popen([str(GUNICORN), "-c", "gunicorn.conf.py", "wsgi:app"], cwd=ROOT, env=env,
                              stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 90
    while time.time() < deadline:  # up once /health answers at all (503 means: up, no model yet)
        try:
            call(f"http://127.0.0.1:{port}/health")
            return server
        except OSError:
            assert server.poll() is None, log.read_text()
            time.sleep(0.3)
    server.kill()
    pytest.fail("server did not start:\n" + log.read_text())


def test_served_app_bootstraps_an_admin_once_and_keeps_data_across_restarts(server_dir):
    port, log = free_port(), server_dir / "server.log"
    base = f"http://127.0.0.1:{port}"
    server = start_server(server_dir / "data", port, log, LOAD_MODEL_AT_START="false")  # no model needed
    try:
        match = re.search(r"password: (\S+)", log.read_text())
        assert match, log.read_text()
        status, tokens = call(f"{base}/auth/login", {"username": "admin", "password": match.group(1)})
        assert status == 200
        status, me = call(f"{base}/auth/me", token=tokens["access_token"])
        assert status == 200 and me["role"] == "admin"
        status, error = call(f"{base}/auth/me", token="garbage")
        assert status == 401 and error["code"] == "INVALID_TOKEN"
    finally:
        server.terminate()
        server.wait(timeout=30)
    server = start_server(server_dir / "data", port, log, LOAD_MODEL_AT_START="false")  # no model needed
    try:
        assert log.read_text().count("password: ") == 1, "the admin password was printed twice"
        status, me = call(f"{base}/auth/me", token=tokens["access_token"])
        assert status == 200 and me["username"] == "admin"  # same secret, same database after restart
    finally:
        server.terminate()
        server.wait(timeout=30)
