"""Bounded load test (make bench-load): simulated users chat and upload against a real server.

Starts the server as `make run` does (gunicorn, embedded defaults, the model loaded) on a free
local port, unless --url points at one already running. Each user registers, uploads a small
document of its own, then for the given time asks questions (most about its document, some about
nothing it has) and now and then uploads another. Afterwards it checks that nothing was lost:
every accepted upload became ready, and every session holds exactly the turns that were answered.
Prints latency p50/p99 and throughput per operation and the status codes seen; exits 1 on any
5xx other than the designed 503 (queue full, model busy) or on lost data.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fixtures.server import call, free_port, start_server  # noqa: E402
from monitoring.search_stats import percentile  # noqa: E402

TOWNS = ["Arles", "Bergen", "Cork", "Delft", "Evora", "Faro", "Ghent", "Hull", "Ivrea", "Jena", "Kiel", "Lund",
         "Mainz", "Nancy", "Oulu", "Pisa", "Quimper", "Riga", "Split", "Tartu", "Ulm", "Vigo"]


@dataclass
class Results:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: Counter = field(default_factory=Counter)
    uploads: list[tuple[str, str]] = field(default_factory=list)  # (token, document id) accepted
    turns: dict[tuple[str, str], int] = field(default_factory=Counter)  # (token, session) -> answered turns
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, operation: str, status: int, seconds: float) -> None:
        with self.lock:
            self.latencies[operation].append(seconds)
            self.statuses[(operation, status)] += 1


def user(base: str, number: int, until: float, results: Results, workdir: Path) -> None:
    session = requests.Session()
    name, town = f"load{number}_{os.getpid()}", TOWNS[number % len(TOWNS)]
    session.post(f"{base}/auth/register", json={"username": name, "password": "correct horse battery"}, timeout=60)
    token = session.post(f"{base}/auth/login", json={"username": name, "password": "correct horse battery"},
                         timeout=60).json()["access_token"]
    session.headers["Authorization"] = f"Bearer {token}"
    upload(session, base, results, token, workdir, name, town, 0)
    chat = session.post(f"{base}/chat/start", json={}, timeout=60).json()["sessionId"]
    rng = random.Random(number)
    count = 1
    while time.monotonic() < until:
        if rng.random() < 0.1:
            count += 1
            upload(session, base, results, token, workdir, name, town, count)
            continue
        question = (f"When does the ferry of {town} leave?" if rng.random() < 0.8
                    else "What is the airspeed of an unladen swallow?")
        started = time.perf_counter()
        response = session.post(f"{base}/chat/message", timeout=300, json={
            "sessionId": chat, "message": question, "generation": {"num_beams": 1, "temperature": 0, "max_new_tokens": 24}})
        results.record("chat", response.status_code, time.perf_counter() - started)
        if response.status_code == 200:
            with results.lock:
                results.turns[(token, chat)] += 1
        elif response.status_code == 503:
            time.sleep(float(response.headers.get("Retry-After", "1")))


def upload(session: requests.Session, base: str, results: Results, token: str, workdir: Path, name: str,
           town: str, count: int) -> None:
    path = workdir / f"{name}-{count}.txt"
    path.write_text(f"Timetable of {town}, edition {count}.\n\nThe ferry of {town} leaves at {count % 12 + 1}:15 "
                    f"every morning from the old pier.\n\n" + f"Notes about the harbour of {town}. " * 30)
    started = time.perf_counter()
    with path.open("rb") as handle:
        response = session.post(f"{base}/upload", files={"file": (path.name, handle)}, timeout=120)
    results.record("upload", response.status_code, time.perf_counter() - started)
    if response.status_code in (200, 201, 202):
        with results.lock:
            results.uploads.append((token, response.json()["document"]["id"]))


def check_nothing_lost(base: str, results: Results, wait_s: float) -> list[str]:
    problems = []
    deadline = time.monotonic() + wait_s
    pending = list(results.uploads)
    while pending and time.monotonic() < deadline:
        time.sleep(1)
        pending = [(token, doc) for token, doc in pending
                   if call(f"{base}/documents/{doc}", token=token)[1]["document"]["status"] != "ready"]
    problems += [f"upload {doc} never became ready" for _, doc in pending]
    for (token, chat), answered in results.turns.items():
        stored = len(call(f"{base}/chat/sessions/{chat}", token=token)[1]["messages"])
        if stored != 2 * answered:
            problems.append(f"session {chat}: {stored} messages stored for {answered} answered turns")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--url", help="a running server (default: start one)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp())
    server = None
    base = args.url
    if base is None:
        port = free_port()
        server = start_server(workdir / "data", port, workdir / "server.log", RATELIMIT_REGISTER="1000 per hour",
                              RATELIMIT_LOGIN="1000 per minute", RATELIMIT_CHAT="1000 per minute",
                              RATELIMIT_UPLOAD="1000 per minute")
        base = f"http://127.0.0.1:{port}"
        while call(f"{base}/health")[0] != 200:
            time.sleep(0.5)
    results = Results()
    started = time.monotonic()
    threads = [threading.Thread(target=user, args=(base, number, started + args.seconds, results, workdir))
               for number in range(args.users)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        problems = check_nothing_lost(base, results, wait_s=300)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=60)
    print(f"\n{args.users} users for {args.seconds:.0f} s against {base} ({elapsed:.0f} s with the last requests)\n")
    print(f"{'operation':>10} | {'requests':>8} | {'per s':>6} | {'p50 s':>7} | {'p99 s':>7} | statuses")
    print(" | ".join("-" * width for width in (10, 8, 6, 7, 7, 20)))
    for operation, values in sorted(results.latencies.items()):
        statuses = ", ".join(f"{status}: {count}" for (op, status), count in sorted(results.statuses.items())
                             if op == operation)
        print(f"{operation:>10} | {len(values):>8} | {len(values) / elapsed:>6.2f} | {statistics.median(values):>7.2f} | "
              f"{percentile(values, 0.99):>7.2f} | {statuses}")
    server_errors = {key: count for key, count in results.statuses.items() if key[1] >= 500 and key[1] != 503}
    print(f"\naccepted uploads: {len(results.uploads)}, all ready: {not any('upload' in p for p in problems)}; "
          f"sessions checked: {len(results.turns)}, all complete: {not any('session' in p for p in problems)}")
    for problem in problems:
        print("LOST:", problem)
    if server_errors or problems:
        print(f"FAILED: unexpected server errors {server_errors}" if server_errors else "FAILED: data lost")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
