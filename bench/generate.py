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
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common.devices import resolve_placement  # noqa: E402
from llm.manager import shared_engine  # noqa: E402
from llm.registry import ModelRegistry  # noqa: E402
from llm.scheduler import Scheduler  # noqa: E402
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
        return "not installed: see the README for the build flags that run it here (builds ~10 min)"
    probe = subprocess.run([sys.executable, "-m", "bench.llama_cpp_probe", str(new_tokens)], cwd=ROOT,
                           capture_output=True, text=True, timeout=600)
    if probe.returncode != 0:
        return f"the llama.cpp run failed (exit code {probe.returncode})"
    return json.loads(probe.stdout.strip().splitlines()[-1])


def first_streamed_token_over_http(cache_dir: Path) -> tuple[float, float, str]:
    """A person's wait with the default settings: a question sent over HTTP (a real socket) to the
    app with a document holding its answer; seconds to the first `token` event and to `done`, and
    the strategy the adaptive table picked."""
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


def before(registry: ModelRegistry, model_id: str, device: str, dtype: str, new_tokens: int,
           answer_s: float) -> list[tuple[str, str]]:
    """The same single-stream run on another entry (the transformers engine), for comparison."""
    spec = registry.get(model_id)
    if spec is None:
        return [(f"{model_id}", "not in models.json")]
    engine = shared_engine(spec, device, dtype, CACHE_DIR)
    scheduler = Scheduler(lambda: engine, max_queue=2, max_batch=1)
    run(scheduler, 1, 8)  # warm up
    figures = run(scheduler, 1, new_tokens)
    scheduler.stop()
    return [(f"{spec.id} ({engine.name}): decode tok/s; TTFT s; answer s ({figures.tokens} tokens)",
             f"{figures.decode_tok_s:.1f}; {figures.ttft_s:.2f}; {figures.seconds:.2f}"),
            (f"the same answer: ours / {engine.name} (goal <= 0.5x)", f"{answer_s / figures.seconds:.2f}x")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--before", default="smollm2-135m-instruct-transformers",
                        help="the models.json entry timed as the engine before this one ('' to skip)")
    args = parser.parse_args()
    registry = ModelRegistry.from_file(ROOT / "models.json")
    spec = registry.default
    device, dtype = resolve_placement("auto", args.dtype)
    engine = shared_engine(spec, device, dtype, CACHE_DIR)
    scheduler = Scheduler(lambda: engine, max_queue=16, max_batch=8)
    prompt_tokens = engine.encode(messages()).tokens
    run(scheduler, 1, 8)  # warm up
    weights = f"{spec.quantization} (from the GGUF)" if engine.name == "llama.cpp" and spec.quantization else dtype
    rows = [("model; engine; device; weights", f"{spec.id}; {engine.name}; {device}; {weights}"),
            ("prompt tokens; new tokens asked per request", f"{prompt_tokens}; {args.new_tokens}")]
    single = run(scheduler, 1, args.new_tokens)
    rows += [("single-stream decode tok/s (after the first token)", f"{single.decode_tok_s:.1f}"),
             ("time to first token, s", f"{single.ttft_s:.2f}"),
             (f"complete answer ({single.tokens} tokens), s", f"{single.seconds:.2f}")]
    eight = single
    for concurrent in (4, 8):
        eight = run(scheduler, concurrent, args.new_tokens)
        rows.append((f"{concurrent} concurrent: aggregate decode tok/s (x single); incl. prefill; mean TTFT s",
                     f"{eight.aggregate_decode_tok_s:.1f} ({eight.aggregate_decode_tok_s / single.decode_tok_s:.1f}x); "
                     f"{eight.tok_s:.1f}; {eight.ttft_s:.2f}"))
    scheduler.stop()
    if args.before:
        rows += before(registry, args.before, device, dtype, args.new_tokens, single.seconds)
    first_http, whole_http, strategy = first_streamed_token_over_http(CACHE_DIR)
    rows.append((f"HTTP, default settings ({strategy}): first streamed token; whole answer, s",
                 f"{first_http:.2f}; {whole_http:.2f}"))
    reference = llama_cpp(args.new_tokens)
    llama = float("nan") if isinstance(reference, str) else reference["decode_tok_s"]
    if isinstance(reference, str):
        rows.append(("llama.cpp (llama-cpp-python)", reference))
    else:
        rows += [
            ("llama.cpp decode tok/s; incl. prefill; TTFT s",
             f"{reference['decode_tok_s']:.1f}; {reference['tok_s']:.1f}; {reference['ttft_s']:.2f}"),
            ("ours / llama.cpp: single-stream decode (goal >= 0.5x)", f"{single.decode_tok_s / llama:.2f}x"),
            ("ours / llama.cpp: TTFT", f"{single.ttft_s / reference['ttft_s']:.2f}x"),
            ("ours 8 concurrent aggregate decode / llama.cpp single decode (goal >= 2x)",
             f"{eight.aggregate_decode_tok_s / llama:.2f}x"),
        ]
    width = max(len(name) for name, _ in rows)
    print(f"| {'measure'.ljust(width)} | value |\n| {'-' * width} | --- |")
    for name, value in rows:
        print(f"| {name.ljust(width)} | {value} |")
    if not isinstance(reference, str):
        print(f"ratios: single-stream {single.decode_tok_s / llama:.2f}x llama.cpp, "
              f"ttft {single.ttft_s / reference['ttft_s']:.2f}x, "
              f"8-concurrent {eight.aggregate_decode_tok_s / llama:.2f}x llama.cpp single")


if __name__ == "__main__":
    main()
