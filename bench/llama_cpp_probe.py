"""llama.cpp (llama-cpp-python) on the default model's GGUF; run by bench/generate.py in its own
process, because llama.cpp and torch crash when they share one (their OpenMP runtimes clash).
Prints one JSON line: tok/s and time to first token for the same prompt and token count."""
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
    llm = Llama(model_path=str(Path(directory) / gguf), n_ctx=2048, n_threads=2, verbose=True)  # verbose=False crashed (0.3.36)
    llm.create_chat_completion(messages(), max_tokens=4, temperature=0)  # warm up
    llm.reset()  # else llama.cpp reuses the warm-up's evaluated prompt and "prefills" in 0.01 s
    started = time.perf_counter()
    first, pieces = None, 0
    for chunk in llm.create_chat_completion(messages(), max_tokens=new_tokens, temperature=0, stream=True):
        if chunk["choices"][0]["delta"].get("content"):
            first = first or time.perf_counter()
            pieces += 1
    elapsed = time.perf_counter() - started
    print(json.dumps({"tok_s": pieces / elapsed, "ttft_s": (first or started) - started, "tokens": pieces}))


if __name__ == "__main__":
    main()
