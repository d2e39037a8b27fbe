"""The generation engine with the real default model: answers, adaptive settings, batching, limits."""
from __future__ import annotations

import threading

import pytest
from pydantic import ValidationError

from llm.errors import QueueFull
from llm.scheduler import Scheduler
from llm.settings import GenerationOverrides, adaptive_settings
from tests.conftest import assert_error
from tests.prompts import FERRY, GREEDY, TIMETABLE, ask


def test_greedy_answer_contains_the_fact_from_the_prompt(llm_app):
    result = llm_app.extensions["docchat"].llm.generate(FERRY, GREEDY)
    assert "7:45" in result.text
    assert result.finish_reason in ("stop", "length") and result.completion_tokens > 0
    assert result.prompt_tokens > 20 and result.settings.strategy == "greedy"


def test_short_prompts_get_beam_search_by_default(llm_app):
    result = llm_app.extensions["docchat"].llm.generate(FERRY, GenerationOverrides(max_new_tokens=40))
    assert result.settings.strategy == "beam" and result.settings.num_beams == 3
    assert "7:45" in result.text


def test_long_prompts_get_sampling_with_fewer_new_tokens(llm_app):
    filler = "The committee met again and discussed the harbour budget in detail. " * 220
    messages = ask(filler + "The ferry leaves at 7:45.", "When does the ferry leave?")
    result = llm_app.extensions["docchat"].llm.generate(messages, GenerationOverrides(max_new_tokens=8))
    assert result.prompt_tokens > 2048
    assert result.settings.strategy == "sample" and result.settings.temperature == 0.5
    assert result.completion_tokens <= 8


def _documented_rows() -> list[tuple[int, int, dict[str, object]]]:
    """The table in llm/settings.py's docstring: (first, last prompt token count, settings)."""
    import re

    import llm.settings

    rows = []
    for line in (llm.settings.__doc__ or "").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        bounds = re.fullmatch(r"(?:up to (\d+)|(\d+) to (\d+)|over (\d+))", cells[0])
        if len(cells) != 8 or bounds is None:
            continue
        upto, low, high, over = bounds.groups()
        first, last = (0, int(upto)) if upto else (int(low), int(high)) if low else (int(over) + 1, 100_000)
        rows.append((first, last, {
            "strategy": {"beam search": "beam", "greedy": "greedy"}.get(cells[1], "sample"), "num_beams": int(cells[2]),
            "temperature": float(cells[3].split()[0]), "top_p": None if cells[4] == "-" else float(cells[4]),
            "top_k": None if cells[5] == "-" else int(cells[5]), "max_new_tokens": int(cells[6]),
            "repetition_penalty": float(cells[7].split()[0])}))
    return rows


def test_adaptive_table_as_documented():
    """Every column of every row of the documented table, at both ends of the row's range."""
    rows = _documented_rows()
    assert len(rows) == 3 and rows[0][0] == 0 and rows[1][0] == rows[0][1] + 1 and rows[2][0] == rows[1][1] + 1
    for first, last, documented in rows:
        for tokens in (max(first, 1), last):
            settings = adaptive_settings(tokens).as_dict()
            shown = {key: settings[key] for key in documented}
            if documented["top_p"] is None:  # "-": not used by beam search
                assert not settings["do_sample"]
                shown["top_p"] = shown["top_k"] = None
            assert shown == documented, (tokens, shown, documented)
            assert settings["do_sample"] == (documented["strategy"] == "sample")
    assert adaptive_settings(100, model_max_new_tokens=128).max_new_tokens == 128
    greedy = adaptive_settings(100, overrides=GenerationOverrides(num_beams=1, temperature=0))
    assert greedy.strategy == "greedy" and not greedy.do_sample
    with pytest.raises(ValidationError) as error:
        GenerationOverrides(temperature=5)
    assert error.value.errors()[0]["loc"] == ("temperature",)


def test_streamed_pieces_add_up_to_the_answer(llm_app):
    pieces: list[str] = []
    result = llm_app.extensions["docchat"].llm.generate(FERRY, GREEDY, on_token=pieces.append)
    assert len(pieces) > 3 and "".join(pieces).strip() == result.text


def test_batched_requests_each_get_their_own_answer(llm_app):
    llm = llm_app.extensions["docchat"].llm
    tickets = [llm.submit(ask(fact, question), GREEDY) for fact, question, _ in TIMETABLE]
    results = [ticket.result(timeout=300) for ticket in tickets]
    for (_, _, answer), result in zip(TIMETABLE, results, strict=True):
        assert answer in result.text, (answer, result.text)


def test_a_full_queue_refuses_the_overflow_and_answers_the_rest(llm_app):
    engine = llm_app.extensions["docchat"].llm.manager.engine
    scheduler = Scheduler(engine, max_queue=8, max_batch=8, batch_wait_s=0.2)
    barrier, outcomes = threading.Barrier(9), []

    def client() -> None:
        barrier.wait()
        try:
            outcomes.append(scheduler.submit(FERRY, GREEDY).result(timeout=300).text)
        except QueueFull as refused:
            outcomes.append(refused)

    threads = [threading.Thread(target=client) for _ in range(9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=400)
    scheduler.stop()
    refused = [outcome for outcome in outcomes if isinstance(outcome, QueueFull)]
    answers = [outcome for outcome in outcomes if isinstance(outcome, str)]
    assert len(refused) == 1 and refused[0].retry_after_s >= 1
    assert len(answers) == 8 and all("7:45" in answer for answer in answers)


def test_a_cancelled_request_stops_costing_tokens(llm_app):
    llm = llm_app.extensions["docchat"].llm
    ticket = llm.submit(ask("Write at length.", "Tell me a very long story about the sea."),
                        GenerationOverrides(num_beams=1, temperature=0, max_new_tokens=300),
                        on_token=lambda _piece: ticket.cancel())
    result = ticket.result(timeout=300)
    assert result.finish_reason == "cancelled" and result.completion_tokens < 20


def test_health_and_models_report_the_loaded_model(llm_app, users):
    client = llm_app.test_client()
    from tests.conftest import Users

    account = Users(llm_app, client).register()
    health = client.get("/health")
    assert health.status_code == 200
    body = health.get_json()
    assert body["model_loaded"] is True and body["model"] == "smollm2-135m-instruct" and body["device"] == "cpu"
    listed = client.get("/models", headers=account.headers).get_json()
    assert listed["active"] == "smollm2-135m-instruct"
    default = next(model for model in listed["models"] if model["default"])
    assert default["loaded"] is True and default["state"] == "active"
    assert {model["state"] for model in listed["models"] if not model["default"]} == {"available"}
    assert_error(client.get("/models"), 401)


def test_generation_before_the_model_is_loaded_is_503(app):
    from llm.scheduler import ModelNotReady

    with pytest.raises(ModelNotReady):
        app.extensions["docchat"].llm.generate(FERRY)


def test_swap_under_load_loses_no_request_and_keeps_the_previous_for_rollback(llm_app):
    client = llm_app.test_client()
    from tests.conftest import Users

    users = Users(llm_app, client)
    admin, user = users.admin(), users.register()
    llm = llm_app.extensions["docchat"].llm
    original = llm.manager.engine()
    tickets = [llm.submit(FERRY, GREEDY) for _ in range(4)]
    assert_error(client.post("/models/swap", json={"model": "smollm2-135m-instruct-fp32"}, headers=user.headers), 403)
    response = client.post("/models/swap", json={"model": "smollm2-135m-instruct-fp32"}, headers=admin.headers)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["active"] == "smollm2-135m-instruct-fp32" and body["previous"] == "smollm2-135m-instruct"
    assert body["swap_seconds"] > 0
    tickets += [llm.submit(FERRY, GREEDY) for _ in range(3)]
    assert all("7:45" in ticket.result(timeout=300).text for ticket in tickets)  # none lost
    assert str(llm.manager.engine().model.dtype) == "torch.float32"
    states = {m["id"]: m["state"] for m in client.get("/models", headers=user.headers).get_json()["models"]}
    assert states["smollm2-135m-instruct-fp32"] == "active" and states["smollm2-135m-instruct"] == "ready"
    back = client.post("/models/swap", json={"model": "smollm2-135m-instruct"}, headers=admin.headers).get_json()
    assert back["active"] == "smollm2-135m-instruct"
    assert llm.manager.engine() is original  # the same loaded engine came back: nothing was loaded again


def test_swap_to_an_unknown_or_unloadable_model_changes_nothing(llm_app):
    client = llm_app.test_client()
    from tests.conftest import Users

    admin = Users(llm_app, client).admin()
    assert_error(client.post("/models/swap", json={"model": "no-such-model"}, headers=admin.headers), 404, "NOT_FOUND")
    body = assert_error(client.post("/models/swap", json={"model": "qwen2.5-7b-instruct"}, headers=admin.headers),
                        422, "MODEL_LOAD_FAILED")
    assert "qwen2.5-7b-instruct" in body["error"]
    listed = client.get("/models", headers=admin.headers).get_json()
    assert listed["active"] == "smollm2-135m-instruct"
    failed = next(m for m in listed["models"] if m["id"] == "qwen2.5-7b-instruct")
    assert failed["state"] == "failed" and failed["error"]


def test_cuda_out_of_memory_is_retried_smaller_then_a_clear_503(llm_app, monkeypatch):
    """The device is the neighbour here: its generate raises CUDA's out-of-memory error, as a
    full GPU would. The engine retries once with one beam and half the new tokens, then answers
    503 GPU_OUT_OF_MEMORY with Retry-After, and the server keeps serving."""
    import torch

    manager = llm_app.extensions["docchat"].llm.manager
    manager.swap("smollm2-135m-instruct-transformers")  # the default runs on llama.cpp, CPU only
    engine = manager.engine()
    real_generate, calls = engine.model.generate, []

    def out_of_memory(**options):
        calls.append((options["num_beams"], options["max_new_tokens"]))
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    client = llm_app.test_client()
    from tests.conftest import Users

    key = client.post("/auth/api-keys", json={"name": "k"}, headers=Users(llm_app, client).register().headers)
    headers = {"Authorization": f"Bearer {key.get_json()['key']}"}
    body = {"model": "smollm2-135m-instruct-transformers", "max_tokens": 40,
            "messages": [{"role": "user", "content": "Hi"}]}
    monkeypatch.setattr(engine.model, "generate", out_of_memory)
    refused = client.post("/v1/chat/completions", json=body, headers=headers)
    assert refused.status_code == 503 and refused.get_json()["error"]["code"] == "gpu_out_of_memory"
    assert int(refused.headers["Retry-After"]) >= 1
    assert calls == [(1, 40), (1, 20)]  # tried, then once more with half the new tokens
    monkeypatch.setattr(engine.model, "generate", real_generate)
    assert client.post("/v1/chat/completions", json=body, headers=headers).status_code == 200
