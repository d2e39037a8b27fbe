"""Generation benchmark through the scheduler: prints a table (make bench-generate).

Single-stream decode tok/s and time to first token for a ~300-token RAG prompt, then aggregate
tok/s with 4 and 8 concurrent requests (dynamic batching). Greedy decoding with a fixed
number of new tokens, so every configuration does the same work. The default model runs on the
engine models.json names (llama.cpp on CPU); the transformers engine runs the same prompt for the
"before" row, and plain llama-cpp-python runs the same GGUF in a child process for the ratios.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common.devices import resolve_placement  # noqa: E402
from llm.engine import TransformersEngine  # noqa: E402
from llm.manager import shared_engine  # noqa: E402
from llm.registry import ModelRegistry, ModelSpec  # noqa: E402
from llm.scheduler import Scheduler  # noqa: E402
from llm.service import batch_wait_for  # noqa: E402
from llm.settings import GenerationOverrides  # noqa: E402

CONTEXT = ("The harbour authority publishes its timetable each spring. Ferries to the island leave at 7:45, "
           "11:30 and 16:10 on weekdays, and at 9:00 and 15:00 on weekends. Tickets cost 6 euros for adults "
           "and 3 euros for children; bicycles travel free. In storms the first crossing may be cancelled, "
           "and notices are posted at the quay and on the authority's website. ") * 4


QUESTION = "Explain in detail everything the context says about the ferries, their tickets and the storms."


def messages() -> list[dict[str, str]]:
    return [{"role": "system", "content": "Answer from the context. If it is not there, say so."},
            {"role": "user", "content": f"Context:\n{CONTEXT}\n\nQuestion: {QUESTION}"}]


@dataclass(frozen=True)
class Figures:
    """One configuration's run: every request started at once."""

    tokens: int  # generated, all requests together
    seconds: float  # until the last answer was complete
    ttft_s: float  # mean, from submission to the first streamed piece
    decode_tok_s: float  # mean per request, after its first token
    aggregate_decode_tok_s: float  # tokens after the first ones / the time all were decoding

    @property
    def tok_s(self) -> float:
        return self.tokens / self.seconds


def run(scheduler: Scheduler, concurrent: int, new_tokens: int) -> Figures:
    """Figures for `concurrent` requests at once."""
    overrides = GenerationOverrides(num_beams=1, temperature=0, max_new_tokens=new_tokens, repetition_penalty=1.0)
    first_token: list[float] = []
    finished: list[float] = []
    produced: list[int] = []
    decode: list[float] = []
    barrier = threading.Barrier(concurrent)
    started = time.perf_counter()

    def client() -> None:
        barrier.wait()
        seen: list[float] = []
        ticket = scheduler.submit(messages(), overrides,
                                  on_token=lambda _p: seen.append(time.perf_counter()) if not seen else None)
        result = ticket.result()
        finished.append(time.perf_counter())
        first_token.append(seen[0] if seen else float("nan"))
        produced.append(result.completion_tokens)
        decode.append(result.decode_tokens_per_s or float("nan"))

    threads = [threading.Thread(target=client) for _ in range(concurrent)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    decoding = max(finished) - max(first_token)  # every request past its first token
    after_first = sum(produced) - concurrent
    return Figures(sum(produced), max(finished) - started, sum(first_token) / concurrent - started,
                   sum(decode) / concurrent, after_first / decoding if decoding > 0 else float("nan"))


def llama_cpp(new_tokens: int) -> dict[str, float] | str:
    """llama.cpp's single-stream figures from its own process (bench/llama_cpp_probe.py), or why not."""
    if importlib.util.find_spec("llama_cpp") is None:
        return "not installed: see docs/benchmarks.md for the build flags that run it here (builds ~10 min)"
    probe = subprocess.run([sys.executable, "-m", "bench.llama_cpp_probe", str(new_tokens)], cwd=ROOT,
                           capture_output=True, text=True, timeout=600)
    if probe.returncode != 0:
        return f"the llama.cpp run failed (exit code {probe.returncode})"
    return json.loads(probe.stdout.strip().splitlines()[-1])


def first_streamed_token_over_http(cache_dir: Path) -> tuple[float, float, str] | str:
    """A person's wait with the default settings: a question sent over HTTP (a real socket) to the
    app with a document holding its answer; seconds to the first `token` event and to `done`, and
    the strategy the adaptive table picked; or why it was not run."""
    missing = [name for name in ("flask", "requests", "chromadb") if importlib.util.find_spec(name) is None]
    if missing:
        return f"skipped: {', '.join(missing)} not installed"
    import requests
    from werkzeug.serving import make_server

    from app import create_app, start_background_work
    from config import Config

    data_dir = Path(tempfile.mkdtemp(prefix="docchat-bench-http-"))
    app = create_app(Config.for_testing(data_dir, load_model_at_start=True, model_cache_dir=cache_dir,
                                        ratelimit_default="100000 per minute"))
    start_background_work(app)
    app.extensions["docchat"].llm.manager.wait_ready(600)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        account = {"username": "bench", "password": "correct horse battery"}
        requests.post(f"{base}/auth/register", json=account, timeout=30)
        headers = {"Authorization": "Bearer " + requests.post(f"{base}/auth/login", json=account,
                                                              timeout=30).json()["access_token"]}
        requests.post(f"{base}/upload?wait=true", headers=headers, timeout=600,
                      files={"file": ("timetable.txt", CONTEXT[:len(CONTEXT) // 4].encode())})  # a short prompt
        session = requests.post(f"{base}/chat/start", json={}, headers=headers, timeout=30).json()["sessionId"]
        body = {"sessionId": session, "message": "When does the first weekday ferry leave?", "stream": True}
        started, first, strategy = time.perf_counter(), None, "?"
        with requests.post(f"{base}/chat/message", json=body, headers=headers, stream=True, timeout=600) as response:
            for line in response.iter_lines():
                if line.startswith(b"event: token") and first is None:
                    first = time.perf_counter() - started
                if line.startswith(b"data:") and b'"generation"' in line:
                    strategy = json.loads(line[5:])["generation"]["strategy"]
        return first or float("nan"), time.perf_counter() - started, strategy
    finally:
        server.shutdown()
        app.extensions["docchat"].close()


CACHE_DIR = Path(tempfile.gettempdir()) / "docchat-bench-model-cache"


def before(spec: ModelSpec, device: str, dtype: str, new_tokens: int, answer_s: float) -> list[tuple[str, str]]:
    """The same single-stream run on another entry (the transformers engine without the static
    decode path, as it was before it), for comparison."""
    engine = shared_engine(spec, device, dtype, CACHE_DIR, static_decode="off")
    scheduler = Scheduler(lambda: engine, max_queue=2, max_batch=1)
    run(scheduler, 1, 8)  # warm up
    figures = run(scheduler, 1, new_tokens)
    scheduler.stop()
    return [(f"{spec.id} ({engine.name}, dynamic cache): decode tok/s; TTFT s; answer s ({figures.tokens} tokens)",
             f"{figures.decode_tok_s:.1f}; {figures.ttft_s:.2f}; {figures.seconds:.2f}"),
            (f"the same answer: ours / {engine.name} (goal <= 0.5x)", f"{answer_s / figures.seconds:.2f}x")]


def plain_generate(spec: ModelSpec, device: str, dtype: str, prompt_ids: list[int], rows: int, new_tokens: int,
                   static: bool) -> dict[str, float]:
    """Plain transformers `generate` on a fresh copy of the same weights, `rows` copies of the
    prompt at once, greedy, exactly `new_tokens` each: with its static cache (compiled, CUDA
    graphs) or its dynamic cache (eager). Decode tok/s counts the tokens after the first."""
    import torch

    from llm.loader import load_model

    model, tokenizer = load_model(spec, device, dtype, CACHE_DIR)
    ids = torch.tensor([prompt_ids] * rows, device=model.device)
    options: dict[str, Any] = {"do_sample": False, "pad_token_id": tokenizer.pad_token_id,
                               "attention_mask": torch.ones_like(ids)}
    if static:
        options["cache_implementation"] = "static"

    def timed(tokens: int) -> float:
        synchronize()
        started = time.perf_counter()
        with torch.inference_mode():
            model.generate(ids, max_new_tokens=tokens, min_new_tokens=tokens, **options)
        synchronize()
        return time.perf_counter() - started

    warm_started = time.perf_counter()
    timed(new_tokens)  # compiles and records (static), or warms the kernels (dynamic)
    timed(new_tokens)
    start_up = time.perf_counter() - warm_started
    first = min(timed(1) for _ in range(3))
    whole = min(timed(new_tokens) for _ in range(2))
    return {"decode_tok_s": rows * (new_tokens - 1) / (whole - first), "ttft_s": first, "start_up_s": start_up}


def synchronize() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def quantized_rows(spec: ModelSpec, device: str, dtype: str, new_tokens: int) -> list[tuple[str, str]]:
    """Weights in fp16, int8 and nf4 (bitsandbytes) on CUDA: memory and single-stream decode tok/s."""
    import torch

    if importlib.util.find_spec("bitsandbytes") is None:
        return [("int8 / nf4 weights", "skipped: bitsandbytes not installed")]
    rows = []
    for quantization in (None, "int8", "nf4"):
        variant = replace(spec, id=f"{spec.id}-{quantization or dtype}", backend="transformers",
                          quantization=quantization)
        torch.cuda.empty_cache()
        engine = shared_engine(variant, device, dtype, CACHE_DIR)
        assert isinstance(engine, TransformersEngine)
        scheduler = Scheduler(lambda engine=engine: engine, max_queue=2, max_batch=1, batch_wait_s=0.005)
        run(scheduler, 1, 8)
        figures = run(scheduler, 1, new_tokens)
        scheduler.stop()
        megabytes = engine.model.get_memory_footprint() / 2**20
        rows.append((f"weights {quantization or dtype}: memory MB; single-stream decode tok/s",
                     f"{megabytes:.0f}; {figures.decode_tok_s:.1f}"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--before", default="smollm2-135m-instruct-transformers",
                        help="the models.json entry timed as the engine before this one ('' to skip)")
    parser.add_argument("--model-path", default="",
                        help="a transformers model folder to time instead of the default entry's weights "
                             "(e.g. the same config with random weights: speed does not depend on them)")
    args = parser.parse_args()
    registry = ModelRegistry.from_file(ROOT / "models.json")
    spec = registry.default
    if args.model_path:
        spec = replace(spec, backend="transformers", source={"path": args.model_path}, quantization=None)
    device, dtype = resolve_placement("auto", args.dtype)
    batch_wait = batch_wait_for(device)
    engine = shared_engine(spec, device, dtype, CACHE_DIR)
    scheduler = Scheduler(lambda: engine, max_queue=16, max_batch=8, batch_wait_s=batch_wait)
    prompt = engine.encode(messages())
    started = time.perf_counter()
    for concurrent in (1, 4, 8):  # warm up, with the shapes timed below
        run(scheduler, concurrent, args.new_tokens)
    warm_up_s = time.perf_counter() - started
    weights = f"{spec.quantization} (from the GGUF)" if engine.name == "llama.cpp" and spec.quantization else dtype
    rows = [("model; engine; device; weights", f"{spec.id}; {engine.name}; {device}; {weights}"),
            ("prompt tokens; new tokens asked per request", f"{prompt.tokens}; {args.new_tokens}")]
    decoder = getattr(engine, "decoder", None)
    if decoder is not None and decoder.graphs is not None:
        rows.append(("start-up: warm-up of 1, 4 and 8 requests, s (graphs recorded; of which recording, s)",
                     f"{warm_up_s:.2f} ({decoder.graphs.recorded}; {decoder.graphs.record_seconds:.2f})"))
    single = run(scheduler, 1, args.new_tokens)
    rows += [("single-stream decode tok/s (after the first token)", f"{single.decode_tok_s:.1f}"),
             ("time to first token, s", f"{single.ttft_s:.3f}"),
             (f"complete answer ({single.tokens} tokens), s", f"{single.seconds:.2f}")]
    eight = single
    for concurrent in (4, 8):
        eight = run(scheduler, concurrent, args.new_tokens)
        rows.append((f"{concurrent} concurrent: aggregate decode tok/s (x single); incl. prefill; mean TTFT s",
                     f"{eight.aggregate_decode_tok_s:.1f} ({eight.aggregate_decode_tok_s / single.decode_tok_s:.1f}x); "
                     f"{eight.tok_s:.1f}; {eight.ttft_s:.3f}"))
    scheduler.stop()
    if device.startswith("cuda"):
        rows += cuda_peer_rows(spec, device, dtype, prompt.ids, args.new_tokens, single, eight)
    before_spec = registry.get(args.before) if args.before else None
    if args.before and args.model_path:  # the same weights, on the engine as it was
        before_spec = replace(spec, id=f"{spec.id}-before")
    if before_spec is not None:
        rows += before(before_spec, device, dtype, args.new_tokens, single.seconds)
    http = first_streamed_token_over_http(CACHE_DIR)
    if isinstance(http, str):
        rows.append(("HTTP, default settings", http))
    else:
        rows.append((f"HTTP, default settings ({http[2]}): first streamed token; whole answer, s",
                     f"{http[0]:.2f}; {http[1]:.2f}"))
    rows += llama_cpp_rows(args.new_tokens, single, eight)
    width = max(len(name) for name, _ in rows)
    print(f"| {'measure'.ljust(width)} | value |\n| {'-' * width} | --- |")
    for name, value in rows:
        print(f"| {name.ljust(width)} | {value} |")


def cuda_peer_rows(spec: ModelSpec, device: str, dtype: str, prompt_ids: list[int], new_tokens: int,
                   single: Figures, eight: Figures) -> list[tuple[str, str]]:
    """Plain transformers `generate` on the same weights and prompt (static compiled, dynamic
    eager), ours beside it, and the 8-bit and 4-bit weights."""
    rows = []
    for rows_at_once, ours in ((1, single), (8, eight)):
        ours_tok_s = ours.decode_tok_s if rows_at_once == 1 else ours.aggregate_decode_tok_s
        for static in (True, False):
            peer = plain_generate(spec, device, dtype, prompt_ids, rows_at_once, new_tokens, static)
            name = "static cache, compiled" if static else "dynamic cache, eager"
            rows.append((f"plain transformers generate, {name}, batch {rows_at_once}: decode tok/s; TTFT s; "
                         "start-up s", f"{peer['decode_tok_s']:.1f}; {peer['ttft_s']:.3f}; {peer['start_up_s']:.1f}"))
            rows.append((f"ours / plain ({name}), {rows_at_once} at once (goal >= 1.0x against static)",
                         f"{ours_tok_s / peer['decode_tok_s']:.2f}x"))
    return rows + quantized_rows(spec, device, dtype, new_tokens)


def llama_cpp_rows(new_tokens: int, single: Figures, eight: Figures) -> list[tuple[str, str]]:
    reference = llama_cpp(new_tokens)
    if isinstance(reference, str):
        return [("llama.cpp (llama-cpp-python)", reference)]
    llama = reference["decode_tok_s"]
    return [
        ("llama.cpp decode tok/s; incl. prefill; TTFT s",
         f"{reference['decode_tok_s']:.1f}; {reference['tok_s']:.1f}; {reference['ttft_s']:.2f}"),
        ("ours / llama.cpp: single-stream decode (goal >= 0.5x)", f"{single.decode_tok_s / llama:.2f}x"),
        ("ours / llama.cpp: TTFT", f"{single.ttft_s / reference['ttft_s']:.2f}x"),
        ("ours 8 concurrent aggregate decode / llama.cpp single decode (goal >= 2x)",
         f"{eight.aggregate_decode_tok_s / llama:.2f}x"),
    ]


if __name__ == "__main__":
    main()
