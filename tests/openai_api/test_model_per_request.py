"""The model chosen per request (issue 30, point 2): /v1 answers with the models.json entry its
`model` field names, loaded beside the active one on first use (503 with its progress meanwhile,
shown by /models and /health too), within LLM_MEMORY_BUDGET_MB: the least recently used one is
released when a new one needs room. Real SmolLM2 engines throughout."""
from __future__ import annotations

import time
from typing import Any

from tests.conftest import Users, wait_for_loads

FERRY = [{"role": "system", "content": "Answer from the notes. Notes: the harbour ferry leaves at 7:45 each morning."},
         {"role": "user", "content": "When does the ferry leave?"}]
DEFAULT, TRANSFORMERS, FP32 = "smollm2-135m-instruct", "smollm2-135m-instruct-transformers", "smollm2-135m-instruct-fp32"


def _complete(client, account, model: str) -> Any:
    return client.post("/v1/chat/completions", headers=account.headers,
                       json={"model": model, "messages": FERRY, "temperature": 0, "max_tokens": 24})


def _refused(response, status: int, code: str) -> None:
    """An error in OpenAI's envelope."""
    assert response.status_code == status, response.get_json()
    assert response.get_json()["error"]["code"] == code, response.get_json()


def _answer_once_loaded(client, account, model: str, seen: list[float]) -> dict[str, Any]:
    """Ask (which starts the load), follow /models until it is loaded, ask again; `seen` collects
    the progress figures /models showed meanwhile."""
    first = _complete(client, account, model)
    if first.status_code == 200:
        return first.get_json()
    _refused(first, 503, "model_not_ready")
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        state = next(m for m in client.get("/models", headers=account.headers).get_json()["models"] if m["id"] == model)
        if state["state"] != "loading":
            break
        seen.append(state["progress"])
        time.sleep(0.2)
    response = _complete(client, account, model)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_v1_answers_with_the_model_it_names_loaded_beside_the_active_one(make_llm_app):
    app = make_llm_app(watchdog_s=0)
    client = app.test_client()
    user = Users(app, client).register()
    first = _complete(client, user, TRANSFORMERS)
    _refused(first, 503, "model_not_ready")
    assert first.headers["Retry-After"] and "is loading" in first.get_json()["error"]["message"]
    assert TRANSFORMERS in client.get("/health").get_json()["models_loading"]
    seen: list[float] = []
    body = _answer_once_loaded(client, user, TRANSFORMERS, seen)
    assert seen and seen == sorted(seen)  # the progress was shown, and only moved forward
    assert "7:45" in body["choices"][0]["message"]["content"] and body["model"] == TRANSFORMERS
    assert all(0 <= value < 1 for value in seen)
    states = {m["id"]: m for m in client.get("/models", headers=user.headers).get_json()["models"]}
    assert states[TRANSFORMERS]["state"] == "ready" and states[TRANSFORMERS]["progress"] == 1.0
    assert states[DEFAULT]["state"] == "active"  # the default still answers everything else
    assert client.get("/health").get_json()["models_loading"] == {}
    assert "7:45" in _complete(client, user, DEFAULT).get_json()["choices"][0]["message"]["content"]
    rag = _complete(client, user, TRANSFORMERS + "+rag")
    assert rag.status_code == 200 and rag.get_json()["sources"] == []  # no documents: the no-context answer
    _refused(_complete(client, user, "no-such-model"), 404, "model_not_found")
    loaded = client.post("/models/load", json={"model": TRANSFORMERS}, headers=user.headers)
    assert loaded.status_code == 200 and loaded.get_json() == {"model": TRANSFORMERS, "state": "ready", "progress": 1.0}
    assert client.post("/models/load", json={"model": "no-such-model"}, headers=user.headers).status_code == 404
    loading = client.post("/models/load", json={"model": FP32}, headers=user.headers)  # what the UI's picker does
    assert loading.status_code == 202 and loading.get_json()["state"] == "loading"


def test_the_least_recently_used_model_makes_room_within_the_memory_budget(make_llm_app):
    app = make_llm_app(watchdog_s=0, llm_memory_budget_mb=1)  # room for no second model: each evicts the last
    client = app.test_client()
    user = Users(app, client).register()
    _answer_once_loaded(client, user, TRANSFORMERS, [])
    _answer_once_loaded(client, user, FP32, [])
    states = {m["id"]: m["state"] for m in client.get("/models", headers=user.headers).get_json()["models"]}
    assert states[FP32] == "ready" and states[TRANSFORMERS] == "available" and states[DEFAULT] == "active"
    _refused(_complete(client, user, TRANSFORMERS), 503, "model_not_ready")  # released: it loads again


def test_a_chat_session_answers_with_the_model_it_was_started_with(make_llm_app, samples):
    from tests.conftest import upload

    app = make_llm_app(watchdog_s=0)
    client = app.test_client()
    user = Users(app, client).register()
    upload(client, user, samples["pdf"])
    missing = client.post("/chat/start", json={"model": "no-such-model"}, headers=user.headers)
    assert missing.status_code == 404 and "no-such-model" in missing.get_json()["error"]
    started = client.post("/chat/start", json={"model": TRANSFORMERS}, headers=user.headers)
    assert started.status_code == 201 and started.get_json()["model"] == TRANSFORMERS
    session_id = started.get_json()["sessionId"]
    question = {"sessionId": session_id, "message": "When does the lighthouse keeper polish the brass lens?"}
    first = client.post("/chat/message", json=question, headers=user.headers)
    assert first.status_code == 503 and first.get_json()["code"] == "MODEL_NOT_READY"  # it loads on first use
    wait_for_loads(app)
    answered = client.post("/chat/message", json=question, headers=user.headers).get_json()
    assert "thursday" in answered["reply"]["content"].lower()
    engine = app.extensions["docchat"].llm.manager.engine_for(TRANSFORMERS)
    assert engine.name != app.extensions["docchat"].llm.manager.engine().name  # transformers, not llama.cpp
    session = client.get(f"/chat/sessions/{session_id}", headers=user.headers).get_json()
    assert session["model"] == TRANSFORMERS
    branch = client.post(f"/chat/sessions/{session_id}/branch", json={"at": 2}, headers=user.headers).get_json()
    assert client.get(f"/chat/sessions/{branch['sessionId']}", headers=user.headers).get_json()["model"] == TRANSFORMERS
