"""The llama.cpp engine on the real GGUF (issue 15, point 2): many requests share each decode step,
yet each row gets its own answer, stops on its own and can be cancelled alone; beam search streams
the text it ends with; the server runs the default model on it."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from common.text import sentences_of
from llm.engine import GenerationRequest, GenerationResult, Prompt
from llm.llamacpp_engine import LlamaCppEngine
from llm.manager import shared_engine
from llm.registry import ModelRegistry
from llm.settings import GenerationOverrides, adaptive_settings
from tests.prompts import FERRY, GREEDY, TIMETABLE, ask

pytest.importorskip("llama_cpp", reason="llama-cpp-python is installed by `make venv`")
MODELS = Path(__file__).resolve().parents[2] / "models.json"


@pytest.fixture(scope="module")
def engine(model_cache_dir: Path) -> LlamaCppEngine:
    spec = ModelRegistry.from_file(MODELS).default
    loaded = shared_engine(spec, "cpu", "float32", model_cache_dir)
    assert isinstance(loaded, LlamaCppEngine)
    return loaded


def request(engine: LlamaCppEngine, messages: Prompt, overrides: GenerationOverrides = GREEDY,
            on_token: Callable[[str], None] | None = None) -> GenerationRequest:
    prompt = engine.encode(messages)
    return GenerationRequest(messages, adaptive_settings(prompt.tokens, overrides=overrides), prompt, engine, on_token)


def answer(result: GenerationResult | Exception) -> GenerationResult:
    assert isinstance(result, GenerationResult), result
    return result


def test_a_batch_gives_each_row_the_answer_it_gets_alone(engine):
    prompts = [ask(fact, question) for fact, question, _ in TIMETABLE]
    alone = [answer(engine.generate([request(engine, messages)])[0]) for messages in prompts]
    together = [answer(result) for result in engine.generate([request(engine, messages) for messages in prompts])]
    for (_fact, _question, expected), single, batched in zip(TIMETABLE, alone, together, strict=True):
        assert expected in batched.text
        assert batched.text == single.text and batched.completion_tokens == single.completion_tokens


def test_beam_search_and_greedy_requests_share_a_call_and_each_keeps_its_answer(engine):
    """The scheduler hands this engine requests with different settings in one call."""
    beams = GenerationOverrides(num_beams=3, temperature=0.0, max_new_tokens=40)
    museum = ask(TIMETABLE[1][0], TIMETABLE[1][1])
    alone = [answer(engine.generate([request(engine, FERRY, beams)])[0]),
             answer(engine.generate([request(engine, museum)])[0])]
    together = [answer(result) for result in engine.generate([request(engine, FERRY, beams), request(engine, museum)])]
    assert [result.text for result in together] == [result.text for result in alone]
    assert together[0].settings.strategy == "beam" and together[1].settings.strategy == "greedy"


def test_rows_stop_at_their_own_length_and_a_cancelled_row_stops_alone(engine):
    short = request(engine, FERRY, GenerationOverrides(num_beams=1, temperature=0.0, max_new_tokens=3))
    essay = ask("Ferries cross the harbour all day.", "Write a long story about the harbour and its ferries.")
    # an explicit penalty keeps the long story from looping (a loop would end it early, llm/faithful.py)
    long_ = request(engine, essay, GenerationOverrides(num_beams=1, temperature=0.0, max_new_tokens=120,
                                                       repetition_penalty=1.3))
    pieces: list[str] = []

    def cancel_after_five(piece: str) -> None:
        pieces.append(piece)
        if len(pieces) == 5:
            cancelled.cancelled.set()

    cancelled = request(engine, essay, GenerationOverrides(num_beams=1, temperature=0.0, max_new_tokens=120),
                        on_token=cancel_after_five)
    results = [answer(result) for result in engine.generate([short, long_, cancelled])]
    assert results[0].completion_tokens == 3 and results[0].finish_reason == "length"
    assert results[1].completion_tokens > 60, results[1]
    assert results[2].finish_reason == "cancelled" and results[2].completion_tokens < 10


def test_a_streamed_beam_answer_is_the_beam_answer(engine):
    beams = GenerationOverrides(num_beams=3, temperature=0.0, max_new_tokens=60)
    whole = answer(engine.generate([request(engine, FERRY, beams)])[0])
    pieces: list[str] = []
    streamed = answer(engine.generate([request(engine, FERRY, beams, on_token=pieces.append)])[0])
    assert streamed.settings.strategy == "beam" and "7:45" in streamed.text
    assert "".join(pieces) == streamed.text == whole.text
    assert len(pieces) >= 2


def test_greedy_pieces_add_up_to_the_answer_and_sampling_follows_its_settings(engine):
    pieces: list[str] = []
    greedy = answer(engine.generate([request(engine, FERRY, on_token=pieces.append)])[0])
    assert "".join(pieces) == greedy.text and len(pieces) == greedy.completion_tokens
    hot = GenerationOverrides(num_beams=1, temperature=1.5, top_p=1.0, top_k=0, max_new_tokens=30)
    sampled = {answer(engine.generate([request(engine, FERRY, hot)])[0]).text for _ in range(3)}
    assert len(sampled) > 1  # different draws, not the greedy answer three times


def test_the_server_runs_the_default_model_on_llama_cpp(llm_app):
    client = llm_app.test_client()
    from tests.conftest import Users

    user = Users(llm_app, client).register()
    listed = client.get("/models", headers=user.headers).get_json()
    default = next(model for model in listed["models"] if model["id"] == "smollm2-135m-instruct")
    assert default["state"] == "active" and default["engine"] == "llama.cpp"


def test_a_prompt_too_long_for_the_context_fails_alone(engine):
    huge = "harbour " * (engine.context_tokens + 100)
    results = engine.generate([request(engine, huge), request(engine, FERRY)])
    assert isinstance(results[0], ValueError) and "do not fit" in str(results[0])
    assert "7:45" in answer(results[1]).text


def test_the_scheduler_hands_requests_of_different_settings_to_one_call(engine, monkeypatch):
    """transformers needs one setting per generate call; this engine does not, so a beam search and
    a greedy request that arrive together are decoded together."""
    from llm.scheduler import Scheduler

    calls: list[list[str]] = []
    real_generate = engine.generate

    def recording(batch: list[GenerationRequest]) -> list[GenerationResult | Exception]:
        calls.append([request.settings.strategy for request in batch])
        return real_generate(batch)

    monkeypatch.setattr(engine, "generate", recording)
    scheduler = Scheduler(lambda: engine, batch_wait_s=0.5)
    beams = GenerationOverrides(num_beams=3, temperature=0.0, max_new_tokens=40)
    tickets = [scheduler.submit(FERRY, beams), scheduler.submit(ask(TIMETABLE[1][0], TIMETABLE[1][1]), GREEDY)]
    texts = [ticket.result(120).text for ticket in tickets]
    scheduler.stop()
    assert calls == [["beam", "greedy"]]
    assert "7:45" in texts[0] and "10:30" in texts[1]


def test_a_request_past_its_deadline_stops_with_what_it_has(engine):
    import time

    long_ = request(engine, ask("Ferries cross the harbour all day.", "Write a very long story about the harbour."),
                    GenerationOverrides(num_beams=1, temperature=0.0, max_new_tokens=2000, repetition_penalty=1.3))
    long_.deadline = time.monotonic() + 1.0  # 2,000 tokens take far longer (about 100 tok/s here)
    result = answer(engine.generate([long_])[0])
    assert result.finish_reason == "timeout" and 0 < result.completion_tokens < 2000


@pytest.mark.parametrize("engine_id", ["smollm2-135m-instruct", "smollm2-135m-instruct-transformers"])
@pytest.mark.parametrize("beams", [1, 3])
def test_the_sentence_limit_ends_the_real_models_answer_on_both_engines(engine_id: str, beams: int,
                                                                        model_cache_dir: Path) -> None:
    """An essay asked for, two sentences allowed: the answer is its first two sentences, streamed or
    not, greedy or beam search, on llama.cpp and on transformers."""
    engine = shared_engine(ModelRegistry.from_file(MODELS).get(engine_id), "cpu", "float32", model_cache_dir)
    essay = ask("Ferries cross the harbour all day. The harbour has a lighthouse and a fish market.",
                "Write a long story about the harbour, its ferries and its lighthouse.")
    free = GenerationOverrides(num_beams=beams, temperature=0.0, max_new_tokens=120, repetition_penalty=1.3)
    limited = free.model_copy(update={"max_sentences": 2})
    unlimited = answer(engine.generate([request(engine, essay, free)])[0])
    assert len(sentences_of(unlimited.text)) > 2, unlimited.text  # the limit has something to cut
    pieces: list[str] = []
    streamed = answer(engine.generate([request(engine, essay, limited, on_token=pieces.append)])[0])
    whole = answer(engine.generate([request(engine, essay, limited)])[0])
    assert streamed.text == whole.text == "".join(pieces) and len(sentences_of(whole.text)) == 2
    assert whole.finish_reason == "stop" and whole.completion_tokens < unlimited.completion_tokens
    if beams == 1:  # beam search that ends sooner may settle on other beams
        assert unlimited.text.startswith(whole.text)


def test_a_base_models_chat_is_plain_text_ending_in_answer(engine):
    """A tokenizer without a chat template (a pretrained base model's, Gemma 3 270M's) gets the chat as
    plain text for the model to continue."""
    import copy

    from llm.engine import prompt_ids

    base = copy.deepcopy(engine.tokenizer)
    base.chat_template = None
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q1?"},
            {"role": "assistant", "content": "A1."}, {"role": "user", "content": "Q2?"}]
    assert base.decode(prompt_ids(base, chat), skip_special_tokens=True) == "Be brief.\n\nQ1?\n\nAnswer: A1.\n\nQ2?\nAnswer:"
    assert "<|im_start|>" in engine.tokenizer.decode(prompt_ids(engine.tokenizer, chat))  # a chat model's own template
