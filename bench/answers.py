"""Answer benchmark: known facts asked through the real chat service (make bench-answers).

Test documents of every format (fixtures/samples.py, plus a three-page PDF about two bridges for
follow-ups) are uploaded through the HTTP API; fixed questions, single-turn and follow-up, are
asked through /chat/start and /chat/message with the server's default generation settings, once
with dense-only retrieval and once with hybrid (RETRIEVAL_MODE), each on a fresh install.
Printed per mode: exact-fact accuracy (the known fact, lower-cased, appears in the answer, and
for follow-ups the other bridge's name does not: an answer about the wrong subject is wrong), the
share of answers whose first source is the right file and page, and the share of the answers'
sentences the grounding check finds supported by their sources. Beside them, in the same run, the
plain-quote baseline: the first two sentences of the top source the model was given, scored the
same way (a useful answer should beat quoting).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from app import create_app, start_background_work  # noqa: E402
from config import Config  # noqa: E402
from fixtures.samples import BRIDGE_PAGES, make_all, make_pdf_pages  # noqa: E402
from rag.evidence import NAVIGATION_SPARE, evidence  # noqa: E402
from rag.grounding import sentences_of  # noqa: E402


@dataclass(frozen=True)
class Turn:
    question: str
    fact: str  # lower-case text the answer must contain
    filename: str
    page: int | None = None
    wrong: str | None = None  # lower-case text that, in the answer, means it is about something else


SINGLE = [
    Turn("How often does the lighthouse keeper polish the brass lens?", "thursday", "harbour.pdf", 2),
    Turn("What did the quarterly revenue of the Aberdeen bakery rise to?", "48,000", "report.docx"),
    Turn("When do the migratory cranes arrive at Lake Hornborga?", "april", "birds.html"),
    Turn("How long must I hold the button to reset the Zephyr-9 router?", "seventeen", "zephyr.md"),
    Turn("What is Marisol Quintero's role?", "cartographer", "staff.csv"),
    Turn("Wie viel verlangt Jürgen Möller für die Gletschertour?", "240", "alpen.txt"),
]
CONVERSATIONS = [
    [Turn("Who opened the Orion footbridge?", "matilda", "bridge.pdf", 1),
     Turn("And why was it closed?", "flood", "bridge.pdf", 2, wrong="vega")],
    [Turn("Why was the Vega railway bridge closed?", "ice", "bridge.pdf", 3),
     Turn("Which ironworks built the Orion footbridge?", "hartley", "bridge.pdf", 1),
     Turn("What colour was it painted?", "green", "bridge.pdf", 1, wrong="vega")],
]


def run(mode: str, documents: list[Path], model_cache: Path) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix=f"answers-{mode}-"))
    app = create_app(Config.for_testing(workdir / "data", retrieval_mode=mode, model_cache_dir=str(model_cache),
                                        load_model_at_start=True))
    start_background_work(app)
    manager = app.extensions["docchat"].llm.manager
    if not manager.wait_ready(600):
        raise SystemExit(f"the model did not load: {manager.describe()}")
    try:
        client = app.test_client()
        client.post("/auth/register", json={"username": "bench", "password": "bench password"})
        token = client.post("/auth/login", json={"username": "bench", "password": "bench password"}).get_json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        for path in documents:
            with path.open("rb") as handle:
                response = client.post("/upload?wait=true", headers=headers, data={"file": (handle, path.name)},
                                       content_type="multipart/form-data")
            if response.status_code not in (200, 201):
                raise SystemExit(f"{path.name}: {response.get_json()}")
        user_id = client.get("/auth/me", headers=headers).get_json()["id"]
        results = []
        for conversation in [[turn] for turn in SINGLE] + CONVERSATIONS:
            session = client.post("/chat/start", json={}, headers=headers).get_json()["sessionId"]
            for number, turn in enumerate(conversation):
                began = time.perf_counter()
                body = client.post("/chat/message", json={"sessionId": session, "message": turn.question},
                                   headers=headers).get_json()
                results.append(_scored(turn, body, follow_up=number > 0, seconds=time.perf_counter() - began))
                results[-1]["quote_correct"] = _correct(turn, _plain_quote(app, user_id, body, turn.question))
        return {"mode": mode, "results": results}
    finally:
        app.extensions["docchat"].close()


def _plain_quote(app: Any, user_id: int, body: dict[str, Any], question: str) -> str:
    """The baseline: the first two sentences of the top source the model was given (found again as
    the chat found it: the same question, or a follow-up's standalone form, and no contents lists)."""
    docchat, settings = app.extensions["docchat"], app.extensions["docchat"].chat.settings
    asked = body["context"].get("asked_as") or question
    found = evidence(docchat.retriever.search(user_id, asked, settings.top_k + NAVIGATION_SPARE, settings.min_score),
                     settings.top_k)
    return " ".join(text for text, _, _ in sentences_of(found[0].text)[:2]) if found else ""


def _correct(turn: Turn, answer: str) -> bool:
    return turn.fact in answer.lower() and not (turn.wrong and turn.wrong in answer.lower())


def _scored(turn: Turn, body: dict[str, Any], follow_up: bool, seconds: float) -> dict[str, Any]:
    answer = body["reply"]["content"]
    first = body["sources"][0] if body["sources"] else {}
    grounding = body.get("grounding") or {}
    return {"question": turn.question, "follow_up": follow_up, "answer": answer, "seconds": seconds,
            "correct": _correct(turn, answer),
            "first": f"{first.get('filename')} p{first.get('page')}",
            "first_source": first.get("filename") == turn.filename and (turn.page is None or first.get("page") == turn.page),
            "supported_share": grounding.get("supported_share")}


def summary(results: list[dict[str, Any]]) -> dict[str, str]:
    def share(key: str, rows: list[dict[str, Any]]) -> str:
        return f"{sum(1 for row in rows if row[key])}/{len(rows)}" if rows else "-"

    supported = [row["supported_share"] for row in results if row["supported_share"] is not None]
    single = [row for row in results if not row["follow_up"]]
    follow = [row for row in results if row["follow_up"]]
    return {"exact fact (all)": share("correct", results), "exact fact (first questions)": share("correct", single),
            "exact fact (follow-ups)": share("correct", follow),
            "plain quote of the top source (baseline): exact fact (all)": share("quote_correct", results),
            "right first source": share("first_source", results),
            "supported sentences (mean share)": f"{statistics.mean(supported):.2f}" if supported else "-",
            "seconds per answer (median)": f"{statistics.median(row['seconds'] for row in results):.1f}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--show-answers", action="store_true")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="answers-docs-"))
    documents = list(make_all(scratch).values()) + [make_pdf_pages(scratch / "bridge.pdf", BRIDGE_PAGES,
                                                                   title="Bridges of the Wend")]
    model_cache = Path(os.environ.get("MODEL_CACHE_DIR", tempfile.mkdtemp(prefix="answers-models-")))
    runs = [run(mode, documents, model_cache) for mode in ("dense", "hybrid")]
    tables = {entry["mode"]: summary(entry["results"]) for entry in runs}
    print(f"\nAnswers to {len(runs[0]['results'])} known-fact questions ({len(SINGLE)} single-turn, "
          f"{sum(len(c) for c in CONVERSATIONS)} in {len(CONVERSATIONS)} conversations), default generation settings\n")
    print("| measure | dense | hybrid |")
    print("| --- | --- | --- |")
    for measure in tables["dense"]:
        print(f"| {measure} | {tables['dense'][measure]} | {tables['hybrid'][measure]} |")
    if args.show_answers:
        for entry in runs:
            for row in entry["results"]:
                mark = "ok " if row["correct"] else "MISS"
                print(f"{entry['mode']:6} {mark} [{row['first']}] {row['question']} -> {row['answer'][:100]!r}")


if __name__ == "__main__":
    main()
