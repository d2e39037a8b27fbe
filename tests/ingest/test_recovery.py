"""kill -9 during ingestion, then a restart: the document is finished once, never duplicated or stuck."""
from __future__ import annotations

import os
import re
import signal
import time

import chromadb
import requests
from chromadb.config import Settings

from fixtures.samples import make_pdf
from fixtures.server import free_port, start_server


def _login(base: str, log_text: str) -> dict[str, str]:
    password = re.search(r"password: (\S+)", log_text).group(1)
    tokens = requests.post(f"{base}/auth/login", json={"username": "admin", "password": password}, timeout=10).json()
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def _document(base: str, headers: dict[str, str], document_id: str) -> dict:
    return requests.get(f"{base}/documents/{document_id}", headers=headers, timeout=10).json()["document"]


def test_kill_9_mid_ingestion_then_restart_finishes_the_document_once(server_dir):
    data, log, port = server_dir / "data", server_dir / "server.log", free_port()
    base = f"http://127.0.0.1:{port}"
    big = make_pdf(server_dir / "manual.pdf", fact_page=400, pages=500)
    server = start_server(data, port, log, LOAD_MODEL_AT_START="false")  # ingestion needs no model
    try:
        headers = _login(base, log.read_text())
        with big.open("rb") as handle:
            response = requests.post(f"{base}/upload", headers=headers, files={"file": ("manual.pdf", handle)}, timeout=30)
        assert response.status_code == 202, response.text
        document_id = response.json()["document"]["id"]
        deadline = time.time() + 120
        while time.time() < deadline:
            state = _document(base, headers, document_id)
            if state["status"] == "processing" and state["progress"] > 0.2:
                break
            assert state["status"] != "ready", "finished before the kill: make the file bigger"
            time.sleep(0.1)
        else:
            raise AssertionError(f"never reached the middle of ingestion: {state}")
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)

    server = start_server(data, port, log, LOAD_MODEL_AT_START="false")  # ingestion needs no model
    try:
        deadline = time.time() + 180
        while (state := _document(base, headers, document_id))["status"] != "ready" and time.time() < deadline:
            assert state["status"] in ("queued", "processing"), state
            time.sleep(0.5)
        assert state["status"] == "ready" and state["pages"] == 500 and state["chunks"] >= 500, state
        assert f"document {document_id} was left processing by a dead worker" in log.read_text()
        hits = requests.post(f"{base}/search", headers=headers, timeout=30,
                             json={"query": "When does the lighthouse keeper polish the brass lens?"}).json()["results"]
        assert hits[0]["page"] == 400
        listed = requests.get(f"{base}/documents", headers=headers, timeout=10).json()["documents"]
        assert [d["id"] for d in listed] == [document_id]
    finally:
        server.terminate()
        server.wait(timeout=30)
    store = chromadb.PersistentClient(path=str(data / "chroma"), settings=Settings(anonymized_telemetry=False))
    collection = store.get_collection("docs_u1")
    assert collection.count() == state["chunks"]  # every chunk once: no duplicates from the first attempt
