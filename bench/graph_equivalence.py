"""On a CUDA GPU: the graphed decode path's tokens against the plain path's, in fp32.

Greedy (the decode loop) and beam search (generate over the same caches and graphs), for a padded
batch of three prompts: `python -m bench.graph_equivalence MODEL_FOLDER` prints whether they match.
"""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from llm.engine import TransformersEngine  # noqa: E402
from llm.manager import shared_engine  # noqa: E402
from llm.registry import ModelRegistry  # noqa: E402
from llm.scheduler import Scheduler  # noqa: E402
from llm.settings import GenerationOverrides  # noqa: E402

CACHE = Path("/tmp/graph-equivalence-cache")
FACTS = [("The ferry leaves at 7:45.", "When does the ferry leave?"),
         ("The museum opens at 10:30.", "When does the museum open?"),
         ("The bakery closes at 18:15 on weekdays and at noon on Saturdays.", "When does the bakery close?")]


def ask(fact: str, question: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "Answer the question using the context."},
            {"role": "user", "content": f"Context: {fact}\n\nQuestion: {question}"}]


def answers(engine: TransformersEngine, overrides: GenerationOverrides) -> list[str]:
    scheduler = Scheduler(lambda: engine, max_queue=8, max_batch=8)
    tickets = [scheduler.submit(ask(fact, question), overrides) for fact, question in FACTS]
    texts = [ticket.result(timeout=120).text for ticket in tickets]
    scheduler.stop()
    return texts


def main() -> None:
    spec = replace(ModelRegistry.from_file(ROOT / "models.json").default, backend="transformers",
                   source={"path": sys.argv[1]}, quantization=None)
    device = sys.argv[2] if len(sys.argv) > 2 else "cuda"
    graphed, plain = (shared_engine(spec, device, "float32", CACHE, mode) for mode in ("on", "off"))
    assert isinstance(graphed, TransformersEngine) and isinstance(plain, TransformersEngine)
    for overrides in (GenerationOverrides(num_beams=1, temperature=0, max_new_tokens=48, repetition_penalty=1.0),
                      GenerationOverrides(num_beams=3, temperature=0, max_new_tokens=24)):
        same = answers(graphed, overrides) == answers(plain, overrides)
        print(f"graphed == plain tokens, {overrides.num_beams} beam(s): {same}")
    graphs = graphed.decoder.graphs if graphed.decoder else None
    print("graphs recorded:", graphs.recorded if graphs else 0)


if __name__ == "__main__":
    main()
