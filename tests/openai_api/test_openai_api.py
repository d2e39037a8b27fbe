"""The OpenAI-compatible API proven with the official `openai` client against the live server
(gunicorn on a real port): models, completions, streaming, stop sequences, retrieval, embeddings,
and the 401, 404 and 429 errors; then this project's remote backend pointed at this /v1."""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from fixtures.server import call, free_port, start_server
from tests.conftest import wait_for
from tests.prompts import FERRY

openai = pytest.importorskip("openai", reason="the openai package is not installed (make test installs it)")

CHAT_LIMIT = 12
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, model_cache_dir: Path) -> Iterator[dict[str, Any]]:
    directory = tmp_path_factory.mktemp("openai-server")
    port, log = free_port(), directory / "server.log"
    server = start_server(directory / "data", port, log, MODEL_CACHE_DIR=str(model_cache_dir),
                          RATELIMIT_CHAT=f"{CHAT_LIMIT} per minute", RATELIMIT_REGISTER="200 per hour",
                          RATELIMIT_LOGIN="200 per minute", RATELIMIT_API_KEYS="200 per hour")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: call(f"{base}/health")[0] == 200, 600, "the model to load")
        yield {"base": base, "active": call(f"{base}/health")[1]["model"]}
    finally:
        server.terminate()
        server.wait(timeout=30)


_users = iter(range(1, 1000))


def api_key(base: str) -> str:
    """A new user's API key, made the way a person would: register, log in, create a key."""
    name = f"client{next(_users)}"
    assert call(f"{base}/auth/register", {"username": name, "password": "correct horse battery"})[0] == 201
    token = call(f"{base}/auth/login", {"username": name, "password": "correct horse battery"})[1]["access_token"]
    status, key = call(f"{base}/auth/api-keys", {"name": "openai client"}, token=token)
    assert status == 201
    return key["key"]


def client(live: dict[str, Any], key: str | None = None) -> Any:
    return openai.OpenAI(base_url=f"{live['base']}/v1", api_key=key or api_key(live["base"]), max_retries=0, timeout=300)


def test_models_list_every_model_with_and_without_retrieval_the_active_one_first(live):
    from llm.registry import ModelRegistry

    ids = [model.id for model in client(live).models.list()]
    assert ids[:2] == [live["active"], live["active"] + "+rag"] and ids[-1] == "all-minilm-l6-v2"
    registry = [spec.id for spec in ModelRegistry.from_file(ROOT / "models.json").all()]
    assert set(ids) == {name for base in registry for name in (base, base + "+rag")} | {"all-minilm-l6-v2"}


def test_a_completion_answers_with_usage(live):
    completion = client(live).chat.completions.create(model=live["active"], messages=FERRY, temperature=0,
                                                      max_tokens=40)
    assert "7:45" in completion.choices[0].message.content
    assert completion.choices[0].finish_reason in ("stop", "length")
    assert completion.usage.prompt_tokens > 20 and completion.usage.completion_tokens > 0
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens


def test_streaming_delivers_pieces_then_usage(live):
    stream = client(live).chat.completions.create(model=live["active"], messages=FERRY, temperature=0, max_tokens=40,
                                                  stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert "7:45" in text and len([chunk for chunk in chunks if chunk.choices]) > 3
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_a_stop_sequence_cuts_the_answer(live):
    completion = client(live).chat.completions.create(model=live["active"], messages=FERRY, temperature=0,
                                                      max_tokens=40, stop=[":45"])
    content = completion.choices[0].message.content
    assert ":45" not in content and "7" in content and completion.choices[0].finish_reason == "stop"


def test_retrieval_over_the_callers_documents_returns_sources(live, tmp_path):
    key = api_key(live["base"])
    document = tmp_path / "timetable.txt"
    document.write_text("Harbour timetable.\n\nThe island ferry Saltholm departs from pier four at 6:20 each Sunday.\n")
    with document.open("rb") as handle:
        uploaded = requests.post(f"{live['base']}/upload?wait=true", headers={"Authorization": f"Bearer {key}"},
                                 files={"file": ("timetable.txt", handle)}, timeout=300)
    assert uploaded.status_code == 201, uploaded.text
    question = [{"role": "user", "content": "When does the island ferry Saltholm depart?"}]
    completion = client(live, key).chat.completions.create(model=live["active"] + "+rag", messages=question,
                                                           temperature=0, max_tokens=40)
    assert "6:20" in completion.choices[0].message.content
    sources = completion.model_extra["sources"]
    assert sources[0]["filename"] == "timetable.txt" and sources[0]["excerpt"]
    plain = client(live, key).chat.completions.create(model=live["active"], messages=question, max_tokens=8,
                                                      extra_body={"rag": True})
    assert plain.model_extra["sources"][0]["filename"] == "timetable.txt"
    nothing = client(live).chat.completions.create(model=live["active"] + "+rag", messages=question)  # another user
    assert nothing.model_extra["sources"] == [] and "could not find" in nothing.choices[0].message.content


def test_embeddings_use_the_ingestion_model(live):
    result = client(live).embeddings.create(model="all-minilm-l6-v2",
                                            input=["The ferry leaves at 7:45.", "The boat departs at a quarter to eight.",
                                                   "Quarterly revenue rose at the bakery."])
    vectors = np.array([item.embedding for item in result.data])
    assert vectors.shape == (3, 384) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
    assert result.usage.prompt_tokens > 10
    as_floats = requests.post(f"{live['base']}/v1/embeddings", json={"model": "all-minilm-l6-v2", "input": "hi",
                                                                   "encoding_format": "float"},
                              headers={"Authorization": f"Bearer {api_key(live['base'])}"}, timeout=60).json()
    assert len(as_floats["data"][0]["embedding"]) == 384


def test_a_wrong_key_is_an_authentication_error(live):
    with pytest.raises(openai.AuthenticationError) as error:
        client(live, "dck_not-a-real-key").models.list()
    assert error.value.status_code == 401 and error.value.body["type"] == "authentication_error"


def test_an_unknown_model_is_not_found(live):
    with pytest.raises(openai.NotFoundError) as error:
        client(live).chat.completions.create(model="gpt-4o", messages=FERRY)
    assert error.value.body["code"] == "model_not_found" and live["active"] in error.value.body["message"]
    with pytest.raises(openai.NotFoundError):
        client(live).embeddings.create(model="text-embedding-3-small", input="hi")


def test_bad_parameters_name_the_parameter(live):
    with pytest.raises(openai.BadRequestError) as error:
        client(live).chat.completions.create(model=live["active"], messages=FERRY, n=3)
    assert error.value.body["param"] == "n" and error.value.body["type"] == "invalid_request_error"


def test_past_the_limit_is_a_rate_limit_error(live):
    limited = client(live)
    question = [{"role": "user", "content": "What is the capital city of Mongolia?"}]  # no documents: no model call
    for _ in range(CHAT_LIMIT):
        limited.chat.completions.create(model=live["active"] + "+rag", messages=question)
    with pytest.raises(openai.RateLimitError) as error:
        limited.chat.completions.create(model=live["active"] + "+rag", messages=question)
    assert error.value.response.headers["Retry-After"] and error.value.body["code"] == "rate_limit_exceeded"


def test_the_remote_backend_works_against_this_servers_own_v1(live, make_app, tmp_path, monkeypatch):
    from app import start_background_work

    monkeypatch.setenv("DOCCHAT_SELF_KEY", api_key(live["base"]))
    models = tmp_path / "models.json"
    models.write_text(json.dumps({"models": [{
        "id": "self", "backend": "openai", "default": True, "context_length": 8192,
        "source": {"url": f"{live['base']}/v1", "model": live["active"], "api_key_env": "DOCCHAT_SELF_KEY"}}]}))
    app = make_app(load_model_at_start=True, models_file=models)
    start_background_work(app)
    assert app.extensions["docchat"].llm.manager.wait_ready(30)
    from llm.settings import GenerationOverrides

    pieces: list[str] = []
    result = app.extensions["docchat"].llm.generate(FERRY, GenerationOverrides(temperature=0, max_new_tokens=40),
                                                     on_token=pieces.append)
    assert "7:45" in result.text and len(pieces) > 3 and result.prompt_tokens > 20
    assert re.fullmatch(r"remote:127\.0\.0\.1:\d+", app.extensions["docchat"].llm.manager.engine().device)


def test_legacy_completions_continue_raw_text(live):
    completion = client(live).completions.create(model=live["active"], prompt="The harbour ferry leaves at 7:45. "
                                                 "The harbour ferry leaves at", max_tokens=6, temperature=0)
    assert completion.object == "text_completion" and "7:45" in completion.choices[0].text
    assert completion.usage.completion_tokens <= 6
    echoed = client(live).completions.create(model=live["active"], prompt="One, two, three,", max_tokens=4,
                                             temperature=0, echo=True)
    assert echoed.choices[0].text.startswith("One, two, three,") and len(echoed.choices[0].text) > 16
    streamed = client(live).completions.create(model=live["active"], prompt="One, two, three,", max_tokens=4,
                                               temperature=0, stream=True)
    text = "".join(chunk.choices[0].text for chunk in streamed if chunk.choices)
    assert text == echoed.choices[0].text[len("One, two, three,"):]
    with pytest.raises(openai.BadRequestError):
        client(live).completions.create(model=live["active"], prompt=["a", "b"])
