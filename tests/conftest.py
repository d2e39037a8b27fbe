"""Fixtures: an app on a fresh data directory, its test client, and helpers that act as users."""
from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")

from app import create_app  # noqa: E402
from config import Config  # noqa: E402

_names = itertools.count(1)


# Fixtures that bring the language model, a browser or a separate server process: a test using any
# of them is `slow`, and `make test-fast` (pytest -m "not slow") leaves it out.
SLOW_FIXTURES = frozenset({"llm_app", "make_llm_app", "model_cache_dir", "server_dir", "live_server", "browser",
                           "chroma", "chroma_server", "fuzz_app"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Keep each phase's report on the test item, so fixtures can tell a failure (e.g. to take a screenshot)."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"report_{report.when}", report)


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite in the test's directory; test_postgres.py overrides this with a fresh PostgreSQL database."""
    return f"sqlite:///{tmp_path / 'data' / 'app.db'}"


@pytest.fixture
def make_app(tmp_path: Path, database_url: str) -> Iterator[Callable[..., Flask]]:
    """Build apps on one data directory and database; a second call is a restart of the server."""
    secret = "s" * 8 + os.urandom(24).hex()
    built: list[Flask] = []

    def build(**overrides: Any) -> Flask:
        settings: dict[str, Any] = {"database_url": database_url, "jwt_secret_key": secret}
        settings.update(overrides)
        app = create_app(Config.for_testing(tmp_path / "data", **settings))
        built.append(app)
        return app

    yield build
    for app in built:
        app.extensions["docchat"].close()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@dataclass
class Account:
    """A registered, logged-in user as a test sees it."""

    id: int
    username: str
    password: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


class Users:
    """Registers and logs in accounts through the real HTTP routes."""

    def __init__(self, app: Flask, client: FlaskClient) -> None:
        self.app = app
        self.client = client

    def register(self, username: str | None = None, password: str = "correct horse battery") -> Account:
        username = username or f"user{next(_names)}"
        response = self.client.post("/auth/register", json={"username": username, "password": password})
        assert response.status_code == 201, response.get_json()
        return self.login(username, password)

    def login(self, username: str, password: str) -> Account:
        response = self.client.post("/auth/login", json={"username": username, "password": password})
        assert response.status_code == 200, response.get_json()
        tokens = response.get_json()
        me = self.client.get("/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
        return Account(me.get_json()["id"], username, password, tokens["access_token"], tokens["refresh_token"])

    def admin(self, username: str | None = None) -> Account:
        """An admin, made the way an operator would: the CLI command."""
        username = username or f"admin{next(_names)}"
        result = self.app.test_cli_runner().invoke(
            args=["users", "create-admin", username, "--password", "admin password 1"]
        )
        assert result.exit_code == 0, result.output
        return self.login(username, "admin password 1")


@pytest.fixture
def users(app: Flask, client: FlaskClient) -> Users:
    return Users(app, client)


def assert_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """The API.md error shape, with this status (and code)."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:500])
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert isinstance(body.get("error"), str) and body["error"], body
    assert isinstance(body.get("code"), str) and body["code"].isupper(), body
    if code is not None:
        assert body["code"] == code, body
    assert "Traceback" not in response.get_data(as_text=True)
    return body


@pytest.fixture
def server_dir(tmp_path: Path) -> Path:
    """A directory for a real server started with gunicorn (tests/app/test_server.py's start_server)."""
    import sys

    if not Path(sys.executable).with_name("gunicorn").exists():
        pytest.skip("gunicorn is not installed beside this Python")
    return tmp_path


@pytest.fixture(scope="session")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One real file per supported type (see tests/samples.py)."""
    from fixtures.samples import make_all

    return make_all(tmp_path_factory.mktemp("samples"))


def upload(client: FlaskClient, account: Account, path: Path, wait: bool = True, name: str | None = None) -> Any:
    """POST /upload of a file as multipart, the way a browser or curl sends it."""
    with path.open("rb") as handle:
        return client.post(f"/upload{'?wait=true' if wait else ''}", headers=account.headers,
                           data={"file": (handle, name or path.name)}, content_type="multipart/form-data")


def search(client: FlaskClient, account: Account, query: str, k: int = 5) -> list[dict[str, Any]]:
    response = client.post("/search", json={"query": query, "k": k}, headers=account.headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["results"]


@pytest.fixture(scope="session")
def model_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One converted copy of the GGUF model for the whole test session."""
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture
def make_llm_app(make_app: Callable[..., Flask], model_cache_dir: Path) -> Callable[..., Flask]:
    """Build apps whose default model (SmolLM2-135M, real) is loaded and active; again = a restart."""
    from app import start_background_work

    def build(**overrides: Any) -> Flask:
        app = make_app(load_model_at_start=True, model_cache_dir=model_cache_dir, **overrides)
        start_background_work(app)
        manager = app.extensions["docchat"].llm.manager
        assert manager.wait_ready(600), manager.describe()
        return app

    return build


def wait_for_loads(app: Flask, seconds: float = 600) -> None:
    """Until no model is loading beside the active one (one a request named), or `seconds` pass."""
    manager = app.extensions["docchat"].llm.manager
    deadline = time.monotonic() + seconds
    while manager.progress() and time.monotonic() < deadline:
        time.sleep(0.2)


@pytest.fixture
def llm_app(make_llm_app: Callable[..., Flask]) -> Flask:
    return make_llm_app()


def postgres_server_url() -> str:
    """TEST_POSTGRES_URL when set and answering; otherwise the test skips, saying why."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    from common.database import normalize_url

    url = os.environ.get("TEST_POSTGRES_URL")
    if not url:
        pytest.skip("TEST_POSTGRES_URL is not set")
    url = normalize_url(url)
    try:
        with create_engine(url).connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at {url}: {exc.orig}")
    return url


@pytest.fixture
def fresh_postgres_url() -> Iterator[str]:
    """A fresh database on the PostgreSQL server, dropped afterwards."""
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    server = postgres_server_url()
    name = f"docchat_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(server).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def redis_url() -> str:
    """TEST_REDIS_URL (default: the local Redis, database 15) when it answers; otherwise skip."""
    import redis

    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis not reachable at {url}: {exc}")
    return url


class ChromaServer:
    """chromadb's own server (`chroma run`) on a free port, which a test may stop and start again."""

    def __init__(self, directory: Path) -> None:
        import sys

        from fixtures.server import free_port

        self.command = Path(sys.executable).with_name("chroma")
        self.directory, self.port = directory, free_port()
        self.process: Any = None

    def start(self) -> None:
        import subprocess
        import time
        import urllib.request

        log = (self.directory / "chroma.log").open("ab")
        self.process = subprocess.Popen([str(self.command), "run", "--path", str(self.directory / "chroma-server"),
                                         "--port", str(self.port)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/v2/heartbeat", timeout=1)
                return
            except OSError:
                assert self.process.poll() is None, (self.directory / "chroma.log").read_text()
                time.sleep(0.3)
        raise AssertionError("the Chroma server did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


@pytest.fixture
def chroma(tmp_path: Path) -> Iterator[ChromaServer]:
    server = ChromaServer(tmp_path)
    if not server.command.exists():
        pytest.skip("the chroma command is not installed beside this Python")
    server.start()
    yield server
    if server.process.poll() is None:
        server.stop()


@pytest.fixture
def chroma_server(chroma: ChromaServer) -> int:
    """The port of a running Chroma server."""
    return chroma.port


def wait_for(condition: Callable[[], Any], seconds: float, what: str) -> None:
    """Poll `condition` until it holds; fail the test saying what never happened."""
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


@contextmanager
def schema_at(db: Any, revision: str) -> Iterator[Any]:
    """A connection (in one transaction) to `db` with its schema at an old migration `revision`,
    to write rows as an older install had them before `db.migrate()` upgrades it."""
    from alembic import command

    from common.database import alembic_config

    with db.engine.begin() as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        yield connection
