"""Recovery (issue 30, point 3): the model engine reloaded without a restart - by an admin over
HTTP, by `flask models reload`, and by the watchdog when a generation hangs or the engine keeps
failing - with the real SmolLM2 engine. The hang and the failures are the engine's `generate`
replaced for a while (the neighbour); the scheduler, the manager and the reload are real."""
from __future__ import annotations

import threading
import time

import pytest

from llm.errors import EngineRestarted
from llm.settings import GenerationOverrides
from tests.conftest import Users, assert_error, wait_for_loads

FERRY = [{"role": "system", "content": "Answer from the notes. Notes: the harbour ferry leaves at 7:45 each morning."},
         {"role": "user", "content": "When does the ferry leave?"}]
GREEDY = GenerationOverrides(num_beams=1, temperature=0, max_new_tokens=12)


def test_an_admin_reloads_the_engine_over_http_and_answers_go_on(make_llm_app):
    app = make_llm_app(watchdog_s=0)
    client = app.test_client()
    accounts = Users(app, client)
    user, admin = accounts.register(), accounts.admin()
    svc = app.extensions["docchat"]
    before = svc.llm.manager.engine()
    assert_error(client.post("/models/reload", headers=user.headers), 403)
    body = client.post("/models/reload", headers=admin.headers).get_json()
    assert body["model"] == "smollm2-135m-instruct" and body["reload_seconds"] > 0
    assert body["requests_failed"] == 0 and body["reason"] == f"asked by {admin.username} over HTTP"
    assert svc.llm.manager.engine() is not before  # a fresh engine, not the cached one
    assert "7:45" in svc.llm.generate(FERRY, GREEDY).text
    events = client.get("/admin/audit?event=model.reloaded", headers=admin.headers).get_json()["events"]
    assert [event["actor"] for event in events] == [admin.username]


def test_the_watchdog_reloads_a_hung_engine_failing_only_the_stuck_request(make_llm_app, monkeypatch):
    app = make_llm_app(watchdog_s=0, llm_timeout_s=10, engine_stall_s=1)
    client = app.test_client()
    admin = Users(app, client).admin()
    svc = app.extensions["docchat"]
    hung = svc.llm.manager.engine()
    release, entered = threading.Event(), threading.Event()
    real_generate = hung.generate

    def hang(requests):  # a native call that never returns, until the test lets it
        entered.set()
        release.wait(120)
        return real_generate(requests)

    monkeypatch.setattr(hung, "generate", hang)
    stuck = svc.llm.submit(FERRY, GREEDY)
    assert entered.wait(30)
    waiting = svc.llm.submit(FERRY, GREEDY)  # queued behind the hung batch
    assert client.post("/admin/maintenance/engine_watchdog", headers=admin.headers).get_json()["detail"] == \
        "engine making progress"  # inside its deadline: not yet a hang
    time.sleep(11.5)  # past the 10 s deadline and the 1 s stall allowance
    run = client.post("/admin/maintenance/engine_watchdog", headers=admin.headers).get_json()
    assert run["outcome"] == "ok" and run["detail"].startswith("reloaded (a generation has been stuck"), run
    with pytest.raises(EngineRestarted, match="reloaded"):
        stuck.result(timeout=10)
    assert "7:45" in waiting.result(timeout=120).text  # moved to the new engine, answered there
    assert svc.llm.manager.engine() is not hung
    release.set()  # the abandoned call returns: its result is thrown away, nothing breaks
    time.sleep(0.5)
    assert "7:45" in svc.llm.generate(FERRY, GREEDY).text


def test_a_reload_moves_only_its_own_models_waiting_requests(make_llm_app, monkeypatch):
    """A model loaded beside the active one (a request named it) keeps its waiting requests when the
    active engine is reloaded: they are answered by their own engine, not the reloaded one."""
    from llm.errors import ModelNotReady

    beside = "smollm2-135m-instruct-transformers"
    app = make_llm_app(watchdog_s=0, llm_timeout_s=10, engine_stall_s=1)
    client = app.test_client()
    admin = Users(app, client).admin()
    svc = app.extensions["docchat"]
    manager = svc.llm.manager
    with pytest.raises(ModelNotReady):
        manager.engine_for(beside)  # starts loading it beside the active one
    wait_for_loads(app)
    other, hung = manager.engine_for(beside), manager.engine()
    release, entered = threading.Event(), threading.Event()
    real_hung, real_other = hung.generate, other.generate
    answered_by_other: list[int] = []

    def hang(requests):
        entered.set()
        release.wait(120)
        return real_hung(requests)

    def recorded(requests):
        answered_by_other.append(len(requests))
        return real_other(requests)

    monkeypatch.setattr(hung, "generate", hang)
    monkeypatch.setattr(other, "generate", recorded)
    stuck = svc.llm.submit(FERRY, GREEDY)
    assert entered.wait(30)
    waiting_active = svc.llm.submit(FERRY, GREEDY)
    waiting_beside = svc.llm.submit(FERRY, GREEDY, model=beside)
    time.sleep(11.5)  # past the 10 s deadline and the 1 s stall allowance
    run = client.post("/admin/maintenance/engine_watchdog", headers=admin.headers).get_json()
    assert run["detail"].startswith("reloaded"), run
    with pytest.raises(EngineRestarted):
        stuck.result(timeout=10)
    assert "7:45" in waiting_active.result(timeout=120).text
    assert "7:45" in waiting_beside.result(timeout=120).text and answered_by_other  # on its own engine
    assert manager.engine_for(beside) is other and manager.engine() is not hung
    release.set()


def test_repeated_engine_failures_reload_it_and_a_failed_request_is_a_clear_503(make_llm_app, monkeypatch):
    app = make_llm_app(watchdog_s=0, engine_failures=2)
    client = app.test_client()
    admin = Users(app, client).admin()
    svc = app.extensions["docchat"]
    broken = svc.llm.manager.engine()

    def fail(_requests):
        raise RuntimeError("the device went away")

    monkeypatch.setattr(broken, "generate", fail)
    for _ in range(2):
        with pytest.raises(RuntimeError):
            svc.llm.generate(FERRY, GREEDY)
    run = client.post("/admin/maintenance/engine_watchdog", headers=admin.headers).get_json()
    assert run["detail"].startswith("reloaded (2 generations in a row failed in the engine)"), run
    assert "7:45" in svc.llm.generate(FERRY, GREEDY).text


def test_flask_models_reload_reaches_the_running_server(make_llm_app):
    app = make_llm_app(watchdog_s=1)  # the server's own watchdog looks every second
    before = app.extensions["docchat"].llm.manager.engine()
    result = app.test_cli_runner().invoke(args=["models", "reload", "--wait", "120"])
    assert result.exit_code == 0, result.output
    assert "smollm2-135m-instruct reloaded in" in result.output and "0 request(s) failed" in result.output
    assert app.extensions["docchat"].llm.manager.engine() is not before


def test_the_cli_says_so_when_no_server_answers(app):
    result = app.test_cli_runner().invoke(args=["models", "reload", "--wait", "1"])
    assert result.exit_code != 0 and "no server process answered within 1 s" in result.output
