"""The CUDA path on a real GPU: the default settings ("auto") put both models there in fp16, and
the language model decodes from static caches with CUDA graphs (llm/static_decode.py).

Skipped without CUDA (CI has none). Needs no web stack, conftest or fixture of ours, so that a GPU
machine with only torch, transformers, sentence-transformers, gguf, pydantic and the two model
packages runs it: `python -m pytest --noconftest tests/llm/test_gpu.py`.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from common.devices import resolve_placement
from llm.manager import shared_engine
from llm.registry import ModelRegistry
from llm.scheduler import Scheduler
from llm.service import LLMService, build_llm_service
from llm.settings import GenerationOverrides
from rag.embedder import Embedder, packaged_model_path
from tests.prompts import FERRY, GREEDY, TIMETABLE, ask

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="module")
def llm(cache_dir: Path) -> Iterator[LLMService]:
    """The service as the app builds it with LLM_DEVICE and LLM_DTYPE left at "auto"."""
    registry = ModelRegistry.from_file(ROOT / "models.json")
    service = build_llm_service(registry, "auto", "auto", cache_dir)
    service.manager.start()
    assert service.manager.wait_ready(600), service.manager.describe()
    yield service
    service.close()


def test_auto_puts_the_default_model_on_the_gpu_in_fp16(llm: LLMService) -> None:
    engine = llm.manager.engine()
    assert engine.device == "cuda"
    assert engine.model.dtype == torch.float16 and engine.model.device.type == "cuda"


def test_decode_steps_replay_cuda_graphs_and_give_the_plain_paths_tokens(llm: LLMService, cache_dir: Path) -> None:
    """The default engine decodes from static caches with CUDA graphs; in fp32 its greedy tokens are
    the plain (dynamic cache, eager) path's, for a padded batch of three and for one request."""
    engine = llm.manager.engine()
    assert engine.decoder is not None and engine.decoder.graphs is not None
    spec = ModelRegistry.from_file(ROOT / "models.json").get("smollm2-135m-instruct-fp32")
    graphed = shared_engine(spec, "cuda", "float32", cache_dir, "on")
    plain = shared_engine(spec, "cuda", "float32", cache_dir, "off")
    for rows in (TIMETABLE[:3], TIMETABLE[3:]):
        answers = []
        for candidate in (graphed, plain):
            scheduler = Scheduler(lambda candidate=candidate: candidate, max_queue=8, max_batch=8)
            tickets = [scheduler.submit(ask(fact, question), GREEDY) for fact, question, _ in rows]
            answers.append([ticket.result(timeout=120).text for ticket in tickets])
            scheduler.stop()
        assert answers[0] == answers[1]
        assert all(answer in text for (_, _, answer), text in zip(rows, answers[0], strict=True))
    assert graphed.decoder.graphs.recorded >= 2  # a graph per shape: 4 rows, then 1


def test_greedy_answer_streams_and_contains_the_fact(llm: LLMService) -> None:
    pieces: list[str] = []
    result = llm.generate(FERRY, GREEDY, on_token=pieces.append)
    assert "7:45" in result.text and result.completion_tokens > 0
    assert len(pieces) > 3 and "".join(pieces).strip() == result.text


def test_default_beam_search_answers(llm: LLMService) -> None:
    result = llm.generate(FERRY, GenerationOverrides(max_new_tokens=40))
    assert result.settings.strategy == "beam" and "7:45" in result.text


def test_long_prompt_samples_in_fp16_without_overflow(llm: LLMService) -> None:
    """Sampling over >2048 tokens in fp16: inf/nan logits would make torch.multinomial raise."""
    filler = "The committee met again and discussed the harbour budget in detail. " * 220
    for _ in range(3):
        result = llm.generate(ask(filler + "The ferry leaves at 7:45.", "When does the ferry leave?"),
                              GenerationOverrides(max_new_tokens=16))
        assert result.prompt_tokens > 2048 and result.settings.strategy == "sample"
        assert 0 < result.completion_tokens <= 16 and result.finish_reason in ("stop", "length")


def test_a_padded_batch_of_eight_gets_eight_own_answers(llm: LLMService) -> None:
    rows = TIMETABLE * 2  # eight requests of different lengths, batched and left-padded together
    tickets = [llm.submit(ask(fact, question), GREEDY) for fact, question, _ in rows]
    results = [ticket.result(timeout=120) for ticket in tickets]
    assert [answer in result.text for (_, _, answer), result in zip(rows, results, strict=True)] == [True] * 8


def test_swap_to_the_fp32_entry_and_back_on_the_gpu(llm: LLMService) -> None:
    swapped = llm.manager.swap("smollm2-135m-instruct-fp32")
    assert swapped["active"] == "smollm2-135m-instruct-fp32"
    engine = llm.manager.engine()
    assert engine.model.dtype == torch.float32 and engine.model.device.type == "cuda"
    assert "7:45" in llm.generate(FERRY, GREEDY).text
    assert llm.manager.swap("smollm2-135m-instruct")["swap_seconds"] < 5  # the fp16 copy stayed loaded
    assert llm.manager.engine().model.dtype == torch.float16


PASSAGES = ["The lighthouse keeper polishes the brass lens every Thursday at dawn.",
            "Ferries to the island leave at 7:45, 11:30 and 16:10 on weekdays.",
            "The bakery on Quay Street sells rye bread until it closes at 18:15.",
            "Storm warnings are posted at the harbour master's office and on the quay.",
            "Children under twelve travel at half price; bicycles travel free."]
QUERIES = ["When is the lens cleaned?", "What time is the first boat?", "Where can I buy bread?",
           "Where do I find weather warnings?", "How much does a child's ticket cost?"]


def test_auto_embeds_on_the_gpu_in_fp16_and_finds_what_the_cpu_finds() -> None:
    gpu = Embedder.shared(packaged_model_path(), *resolve_placement("auto", "auto"))
    cpu = Embedder.shared(packaged_model_path(), "cpu", "float32")
    assert (gpu.device, gpu.dtype) == ("cuda", "float16")
    long_chunks = [" ".join(PASSAGES * 8)[:1200 - 40 * i] for i in range(20)]  # near the 256-token window
    on_gpu, on_cpu = gpu.embed(PASSAGES + long_chunks), cpu.embed(PASSAGES + long_chunks)
    assert on_gpu.dtype == np.float32 and np.allclose(np.linalg.norm(on_gpu, axis=1), 1.0, atol=1e-5)
    assert (on_gpu * on_cpu).sum(axis=1).min() > 0.999  # the same vectors, to half precision
    ranked = gpu.embed(QUERIES) @ on_gpu[:len(PASSAGES)].T
    assert ranked.argmax(axis=1).tolist() == list(range(len(QUERIES)))
