"""The real server as `make run` starts it: gunicorn on a port, first admin printed once, login over HTTP."""
from __future__ import annotations

import re

from fixtures.server import call, free_port, start_server


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
