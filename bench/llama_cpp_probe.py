"""llama.cpp (llama-cpp-python) on the default model's GGUF; run by bench/generate.py in its own
process, so neither engine's threads or caches help or hinder the other's figures. Prints one JSON
line: tok/s including prefill, decode tok/s after the first token, and time to first token, for
the same prompt and token count. (It crashed here with SIGILL when built with AMX: see docs/benchmarks.md.)"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.generate import messages  # noqa: E402
from llm.loader import source_location  # noqa: E402
from llm.registry import ModelRegistry  # noqa: E402


def main() -> None:
    from llama_cpp import Llama

    new_tokens = int(sys.argv[1])
    directory, gguf = source_location(ModelRegistry.from_file(ROOT / "models.json").default)
    llm = Llama(model_path=str(Path(directory) / gguf), n_ctx=2048, n_threads=2, verbose=False)
    llm.create_chat_completion(messages(), max_tokens=4, temperature=0)  # warm up
    llm.reset()  # else llama.cpp reuses the warm-up's evaluated prompt and "prefills" in 0.01 s
    started = time.perf_counter()
    first, pieces = None, 0
    for chunk in llm.create_chat_completion(messages(), max_tokens=new_tokens, temperature=0, stream=True):
        if chunk["choices"][0]["delta"].get("content"):
            first = first or time.perf_counter()
            pieces += 1
    finished = time.perf_counter()
    decode = (pieces - 1) / (finished - first) if first and pieces > 1 else float("nan")
    print(json.dumps({"tok_s": pieces / (finished - started), "decode_tok_s": decode,
                      "ttft_s": (first or started) - started, "tokens": pieces}))


if __name__ == "__main__":
    main()
