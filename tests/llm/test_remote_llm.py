"""The `openai` backend against a real HTTP server speaking the OpenAI API (scripted): streaming,
retries with backoff, error mapping, timeouts, and a hot swap from the local model to it."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from api.streaming import parse_events
from llm.registry import ModelRegistry, ModelRegistryError
from tests.conftest import Users, assert_error, upload
from tests.fake_openai import ANSWER, FakeOpenAIServer

QUESTION = "When does the harbour ferry leave in the morning?"
FACT = "Harbour timetable.\n\nThe harbour ferry leaves at 7:45 every morning from pier two.\n"
LOCAL_DEFAULT = json.loads((Path(__file__).resolve().parents[2] / "models.json").read_text())["models"][0]


@pytest.fixture
def fake() -> Any:
    server = FakeOpenAIServer()
    yield server
    server.close()


def _registry(path: Path, url: str, default_remote: bool = True, **source: Any) -> Path:
    remote = {"id": "remote-qwen", "name": "Qwen on the GPU box", "backend": "openai", "default": default_remote,
              "source": {"url": url, "model": "Qwen/Qwen2.5-7B-Instruct", "api_key_env": "DOCCHAT_TEST_REMOTE_KEY",
                         "retries": 2, "backoff_s": 0.05, **source},
              "context_length": 8192, "generation": {"max_new_tokens": 128}}
    models = [remote] + ([] if default_remote else [LOCAL_DEFAULT])
    path.write_text(json.dumps({"models": models}))
    return path


@pytest.fixture
def remote_app(make_app, fake, tmp_path, monkeypatch):
    """An app whose default model is the remote one; one user with a document holding the fact."""
    from app import start_background_work

    monkeypatch.setenv("DOCCHAT_TEST_REMOTE_KEY", "sk-test-secret-123")

    def build(url: str | None = None, **overrides: Any) -> tuple[Any, Any, Any]:
        models = _registry(tmp_path / f"models-{len(fake.requests)}.json", url or fake.url)
        app = make_app(load_model_at_start=True, models_file=models, **overrides)
        start_background_work(app)
        assert app.extensions["docchat"].llm.manager.wait_ready(60)
        client = app.test_client()
        account = Users(app, client).register()
        fact = tmp_path / "ferry.txt"
        fact.write_text(FACT)
        assert upload(client, account, fact).status_code == 201
        session = client.post("/chat/start", json={}, headers=account.headers).get_json()["sessionId"]
        return client, account, session

    return build


def _ask(client, account, session: str, **body: Any):
    return client.post("/chat/message", json={"sessionId": session, "message": QUESTION, **body},
                       headers=account.headers)


def test_answers_stream_from_the_remote_server_with_the_prompt_we_built(remote_app, fake):
    client, account, session = remote_app()
    response = _ask(client, account, session, stream=True)
    events = parse_events(response.get_data(as_text=True))
    assert [name for name, _ in events][0] == "sources" and events[-1][0] == "done"
    tokens = [data["text"] for name, data in events if name == "token"]
    assert len(tokens) == len(ANSWER.split()) and "".join(tokens) == ANSWER
    done = events[-1][1]
    assert done["reply"]["content"] == ANSWER and done["usage"] == {"prompt_tokens": 321, "completion_tokens": len(ANSWER.split())}
    assert done["generation"]["strategy"] == "greedy" and done["generation"]["num_beams"] == 1  # no beams over HTTP
    sent = fake.requests[-1]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["headers"]["Authorization"] == "Bearer sk-test-secret-123"
    assert sent["body"]["model"] == "Qwen/Qwen2.5-7B-Instruct" and sent["body"]["stream"] is True
    assert sent["body"]["max_tokens"] == 128 and sent["body"]["temperature"] == 0.0
    assert "<documents>" in sent["body"]["messages"][-1]["content"] and "7:45" in sent["body"]["messages"][-1]["content"]
    whole = _ask(client, account, session)
    assert whole.status_code == 200 and whole.get_json()["reply"]["content"] == ANSWER


def test_connection_trouble_is_retried_with_backoff(remote_app, fake):
    client, account, session = remote_app()
    before = len(fake.requests)
    fake.script.extend(["status:503", "status:429"])  # both say Retry-After: 0, which is honoured
    response = _ask(client, account, session)
    assert response.status_code == 200 and response.get_json()["reply"]["content"] == ANSWER
    assert len(fake.requests) - before == 3
    fake.script.extend(["status:502", "status:504"])  # no Retry-After: exponential backoff
    response = _ask(client, account, session)
    assert response.status_code == 200 and response.get_json()["reply"]["content"] == ANSWER
    tries = [request["at"] for request in fake.requests[before + 3:]]
    assert len(tries) == 3
    first_wait, second_wait = tries[1] - tries[0], tries[2] - tries[1]
    assert first_wait >= 0.05 and second_wait >= 0.1  # backoff_s, then twice that


def test_an_unreachable_server_is_503_after_the_retries(remote_app, fake):
    fake.close()
    client, account, session = remote_app(url=fake.url)
    body = assert_error(_ask(client, account, session), 503, "UPSTREAM_UNAVAILABLE")
    assert "unavailable" in body["error"]
    stream = _ask(client, account, session, stream=True)  # the sources first, then the failure as an event
    events = parse_events(stream.get_data(as_text=True))
    assert [name for name, _ in events] == ["sources", "error"]
    assert events[0][1] and events[1][1]["code"] == "UPSTREAM_UNAVAILABLE"
    assert client.get(f"/chat/sessions/{session}", headers=account.headers).get_json()["messages"] == []


def test_a_refusal_is_502_with_the_upstream_reason_and_no_secret(remote_app, fake):
    client, account, session = remote_app()
    fake.script.append("status:400")
    response = _ask(client, account, session)
    body = assert_error(response, 502, "UPSTREAM_ERROR")
    assert "HTTP 400" in body["error"] and "maximum context length" in body["error"]
    assert "sk-test-secret" not in response.get_data(as_text=True)
    fake.script.append("garbage")
    assert_error(_ask(client, account, session), 502, "UPSTREAM_ERROR")


def test_a_stalled_server_times_out_mid_stream_as_an_error_event(remote_app, fake):
    client, account, session = remote_app(llm_timeout_s=1)
    fake.script.append("stall")
    events = parse_events(_ask(client, account, session, stream=True).get_data(as_text=True))
    names = [name for name, _ in events]
    assert names[:2] == ["sources", "token"] and names[-1] == "error"
    assert events[-1][1]["code"] == "GENERATION_TIMEOUT"
    stored = client.get(f"/chat/sessions/{session}", headers=account.headers).get_json()["messages"]
    assert stored[1]["finish_reason"] == "error" and stored[1]["content"] == "The"


def test_hot_swap_from_the_local_model_to_the_remote_one(make_llm_app, fake, tmp_path, monkeypatch):
    monkeypatch.setenv("DOCCHAT_TEST_REMOTE_KEY", "sk-test-secret-123")
    app = make_llm_app(models_file=_registry(tmp_path / "models.json", fake.url, default_remote=False))
    client = app.test_client()
    admin = Users(app, client).admin()
    response = client.post("/models/swap", json={"model": "remote-qwen"}, headers=admin.headers)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["previous"] == LOCAL_DEFAULT["id"]
    assert fake.requests and fake.requests[-1]["body"]["max_tokens"] == 4  # checked before taking traffic
    states = {m["id"]: m["state"] for m in client.get("/models", headers=admin.headers).get_json()["models"]}
    assert states == {"remote-qwen": "active", LOCAL_DEFAULT["id"]: "ready"}
    result = app.extensions["docchat"].llm.generate([{"role": "user", "content": QUESTION}])
    assert result.text == ANSWER


def test_a_swap_to_an_unreachable_remote_changes_nothing(make_llm_app, fake, tmp_path):
    fake.close()
    app = make_llm_app(models_file=_registry(tmp_path / "models.json", fake.url, default_remote=False))
    client = app.test_client()
    admin = Users(app, client).admin()
    assert_error(client.post("/models/swap", json={"model": "remote-qwen"}, headers=admin.headers), 422, "MODEL_LOAD_FAILED")
    assert client.get("/models", headers=admin.headers).get_json()["active"] == LOCAL_DEFAULT["id"]


@pytest.mark.parametrize("source, problem", [
    ({"model": "m"}, "source.url"),
    ({"url": "gpu-box:8000", "model": "m"}, "source.url"),
    ({"url": "http://gpu:8000/v1"}, "source.model"),
    ({"url": "http://gpu:8000/v1", "model": "m", "api_key": "sk-123"}, "api_key_env"),
])
def test_remote_entries_are_validated_at_start(tmp_path, source, problem):
    path = tmp_path / "models.json"
    path.write_text(json.dumps({"models": [{"id": "r", "backend": "openai", "default": True, "source": source,
                                            "context_length": 4096}]}))
    with pytest.raises(ModelRegistryError) as error:
        ModelRegistry.from_file(path)
    assert problem in str(error.value)


def test_the_sources_reach_the_client_before_the_first_token_exists(remote_app, fake):
    """The browser shows the sources and "Generating the answer" while the model is still silent."""
    import threading

    client, account, session = remote_app()
    fake.hold = threading.Event()
    chunks: list[bytes] = []
    got_first = threading.Event()

    def ask_and_read() -> None:  # one thread: a streamed response is read where it was opened
        response = client.post("/chat/message", json={"sessionId": session, "message": QUESTION, "stream": True},
                               headers=account.headers, buffered=False)
        for chunk in response.response:
            chunks.append(chunk)
            got_first.set()

    reader = threading.Thread(target=ask_and_read)
    reader.start()
    try:
        assert got_first.wait(20), "the sources waited for the first token"
        assert chunks[0].startswith(b"event: sources") and b"harbour" in chunks[0].lower()
        assert not any(b"event: token" in chunk for chunk in chunks)  # the model has said nothing yet
    finally:
        fake.hold.set()
        reader.join(timeout=60)
    events = parse_events(b"".join(chunks).decode())
    assert [name for name, _ in events][-1] == "done" and events[-1][1]["reply"]["content"] == ANSWER
