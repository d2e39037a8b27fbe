"""Answer benchmark through the real chat service (make bench-answers): real FAQs, and known facts.

1. FAQ suite (the main one): the FAQs that SQLite, Git, zsh and FFmpeg ship (bench/faq.py; HTML,
   two printed to PDF), each question its own heading with the text under it as the gold answer,
   plus 20 questions that none of them answers. Each question is asked in a fresh session through
   /chat/start and a streamed /chat/message with the server's default generation settings (or
   each strategy of --strategies, to choose the adaptive table by benchmark). Scored automatically
   (bench/answer_scores.py): useful answers, exact copy of facts, markup echoes, refusals on the
   unanswerable and on the answerable questions, seconds per answer p50/p95 and first streamed
   token p50 - and, in the same run, the plain-quote baseline: the first two sentences of the top
   source the model was given, scored the same way.
2. Known facts: test documents of every format (fixtures/samples.py, plus a three-page PDF about
   two bridges for follow-ups), fixed single-turn and follow-up questions, dense-only against
   hybrid retrieval; exact-fact accuracy, right first source, supported sentences, beside the same
   plain-quote baseline.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from answers.evidence import NAVIGATION_SPARE, evidence  # noqa: E402
from app import create_app, start_background_work  # noqa: E402
from bench import answer_scores as score  # noqa: E402
from bench import faq  # noqa: E402
from common.text import sentences_of  # noqa: E402
from config import Config  # noqa: E402
from fixtures.samples import BRIDGE_PAGES, make_all, make_pdf_pages  # noqa: E402
from rag.keywords import coverage  # noqa: E402
from rag.retriever import Source  # noqa: E402

STRATEGIES: dict[str, dict[str, Any] | None] = {
    "default": None,  # the server's adaptive table (llm/settings.py)
    "greedy": {"num_beams": 1, "temperature": 0},
    "beam": {"num_beams": 3, "temperature": 0},
    "sample": {"num_beams": 1, "temperature": 0.3, "top_p": 0.9, "top_k": 40},
}
UNLIMITED = "100000 per minute"  # one user asks every question: the chat's rate limit is not measured
LENGTH_BUCKETS = ((512, "prompt <= 512 tokens"), (2048, "513-2048 tokens"), (10**9, "over 2048 tokens"))


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


class BenchServer:
    """The real app on a fresh data directory, one user with the documents uploaded; questions asked
    over its HTTP API (Flask's test client: no sockets, same routes)."""

    def __init__(self, app: Any, headers: dict[str, str], user_id: int) -> None:
        self.app, self.client, self.headers, self.user_id = app, app.test_client(), headers, user_id

    def ask(self, question: str, generation: dict[str, Any] | None = None,
            session: str | None = None) -> tuple[dict[str, Any], float, float | None]:
        """(the answer as /chat/message returns it, seconds in all, seconds to the first streamed token)."""
        if session is None:
            session = self.client.post("/chat/start", json={}, headers=self.headers).get_json()["sessionId"]
        body: dict[str, Any] = {"sessionId": session, "message": question, "stream": True}
        if generation:
            body["generation"] = generation
        began, first = time.perf_counter(), None
        response = self.client.post("/chat/message", json=body, headers=self.headers, buffered=False)
        done: dict[str, Any] = {}
        for event, data in _events(response.iter_encoded()):
            if event == "token" and first is None:
                first = time.perf_counter() - began
            elif event == "done":
                done = data
            elif event == "error":
                raise SystemExit(f"{question!r}: {data}")
        if not done:
            raise SystemExit(f"{question!r}: the stream ended without its done event")
        return done, time.perf_counter() - began, first

    def given_sources(self, body: dict[str, Any], question: str) -> list[Source]:
        """The chunks the model was given (found again as the chat found them: the same question, or a
        follow-up's standalone form, contents lists left out), for their full texts."""
        docchat = self.app.extensions["docchat"]
        settings = docchat.chat.settings
        asked = body["context"].get("asked_as") or question
        found = docchat.retriever.search(self.user_id, asked, settings.top_k + NAVIGATION_SPARE, settings.min_score)
        return evidence(found, settings.top_k)


def _events(chunks: Iterator[bytes]) -> Iterator[tuple[str, Any]]:
    """(event, data) of a Server-Sent Events stream as its chunks arrive."""
    buffer = ""
    for chunk in chunks:
        buffer += chunk.decode("utf-8")
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(":"))
            if "data" in fields:
                yield fields.get("event", "message"), json.loads(fields["data"])


@contextmanager
def serving(documents: list[Path], model_cache: Path, mode: str = "hybrid",
            models_file: Path | None = None, whole_chunks: bool = False) -> Iterator[BenchServer]:
    workdir = Path(tempfile.mkdtemp(prefix=f"answers-{mode}-"))
    extra: dict[str, Any] = {"models_file": models_file} if models_file else {}
    if whole_chunks:  # the prompt as before passages: longer, for the adaptive table's longer rows
        extra.update(chat_source_tokens=0, chat_evidence_tokens=0)
    app = create_app(Config.for_testing(workdir / "data", retrieval_mode=mode, model_cache_dir=str(model_cache),
                                        load_model_at_start=True, ratelimit_chat=UNLIMITED,
                                        ratelimit_default=UNLIMITED, **extra))
    start_background_work(app)
    manager = app.extensions["docchat"].llm.manager
    if not manager.wait_ready(900):
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
        yield BenchServer(app, headers, client.get("/auth/me", headers=headers).get_json()["id"])
    finally:
        app.extensions["docchat"].close()


def plain_quote(sources: list[Source]) -> str:
    """The baseline: the first two sentences of the top source the model was given."""
    return " ".join(text for text, _, _ in sentences_of(sources[0].text)[:2]) if sources else ""


# --- FAQ suite ---------------------------------------------------------------------------------

def faq_row(server: BenchServer, entry: faq.FaqEntry | None, question: str,
            generation: dict[str, Any] | None) -> dict[str, Any]:
    """One question asked and scored; `entry` None for an unanswerable question."""
    body, seconds, first = server.ask(question, generation)
    answer, kind = body["reply"]["content"], body["reply"].get("answer_kind")
    given = server.given_sources(body, question)
    cited = {(source["document_id"], source["chunk_index"]) for source in body["sources"]}
    cited_texts = [source.text for source in given if (source.document_id, source.chunk_index) in cited]
    baseline = plain_quote(given)
    row = {"question": question, "answerable": entry is not None, "answer": answer, "kind": kind,
           "seconds": seconds, "first_token": first, "prompt_tokens": body["usage"]["prompt_tokens"],
           "refusal": score.is_refusal(answer, kind), "echo": score.echoes_markup(answer),
           "exact": score.copies_exactly(answer, "\n".join(source.text for source in given) + "\n" + question),
           "has_facts": bool(score.facts(answer)), "sentences": len(sentences_of(score.passage(answer))),
           "top_score": max((source.score for source in given), default=0.0),
           "top_coverage": max((coverage(question, source.text)[1] for source in given), default=0.0)}
    if entry is not None:
        row["useful"] = score.is_useful(answer, kind, entry.gold, cited_texts)
        row["baseline_useful"] = score.is_useful(baseline, "quote", entry.gold, [given[0].text] if given else [])
        row["right_section"] = any(score.from_section(text, entry.gold) for text in cited_texts)
    return row


def faq_table(rows: list[dict[str, Any]]) -> dict[str, str]:
    answerable = [row for row in rows if row["answerable"]]
    unanswerable = [row for row in rows if not row["answerable"]]
    seconds = [row["seconds"] for row in rows]
    firsts = [row["first_token"] for row in rows if row["first_token"] is not None]

    def share(key: str, of: list[dict[str, Any]]) -> str:
        return f"{sum(1 for row in of if row[key]) / len(of):.2f}" if of else "-"

    useful, baseline = (sum(1 for row in answerable if row[key]) for key in ("useful", "baseline_useful"))
    return {"useful answers": share("useful", answerable),
            "plain quote of the top source (baseline): useful": share("baseline_useful", answerable),
            "useful, ratio to the baseline": f"{useful / baseline:.2f}x" if baseline else "-",
            "a cited source from the gold section": share("right_section", answerable),
            "exact copy of facts (answers)": share("exact", rows),
            "markup echoes (answers)": str(sum(1 for row in rows if row["echo"])),
            "refusals, unanswerable": share("refusal", unanswerable),
            "refusals, answerable": share("refusal", answerable),
            "sentences per answer (median)": f"{score.median([row['sentences'] for row in rows]):.0f}",
            "seconds per answer p50": f"{score.median(seconds):.2f}",
            "seconds per answer p95": f"{score.percentile(seconds, 0.95):.2f}",
            "first streamed token p50 (s)": f"{score.median(firsts):.2f}"}


def by_length(rows: list[dict[str, Any]]) -> dict[str, str]:
    """Useful share and p50 seconds per prompt-length bucket of the adaptive table."""
    table, low = {}, 0
    for high, label in LENGTH_BUCKETS:
        bucket = [row for row in rows if row["answerable"] and low < row["prompt_tokens"] <= high]
        if bucket:
            table[label] = (f"{sum(1 for row in bucket if row['useful']) / len(bucket):.2f} useful, "
                            f"{score.median([row['seconds'] for row in bucket]):.1f} s ({len(bucket)})")
        low = high
    return table


def run_faq(args: argparse.Namespace, model_cache: Path) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="answers-faq-"))
    documents, entries = faq.documents(scratch)
    questions: list[tuple[faq.FaqEntry | None, str]] = [(entry, entry.question) for entry in entries]
    questions += [(None, question) for question in faq.UNANSWERABLE]
    if args.limit:
        questions = questions[::max(1, len(questions) // args.limit)][:args.limit]
    models_file = _models_file(args.model, scratch) if args.model else None
    tables: dict[str, dict[str, str]] = {}
    lengths: dict[str, dict[str, str]] = {}
    with serving(documents, model_cache, models_file=models_file, whole_chunks=args.whole_chunks) as server:
        for name in args.strategies.split(","):
            rows = []
            for number, (entry, question) in enumerate(questions, start=1):
                rows.append(faq_row(server, entry, question, STRATEGIES[name]))
                print(f"\r{name}: {number}/{len(questions)} questions", end="", file=sys.stderr, flush=True)
            print(file=sys.stderr)
            tables[name], lengths[name] = faq_table(rows), by_length(rows)
            if args.show_answers:
                _show(rows)
            if args.save:
                Path(args.save).with_suffix(f".{name}.json").write_text(json.dumps(rows, indent=1))
    answerable = sum(1 for entry, _ in questions if entry is not None)
    print(f"\nFAQ answers: {answerable} questions from {len(documents)} FAQ documents "
          f"({', '.join(sorted({path.suffix[1:].upper() for path in documents}))}) and "
          f"{len(questions) - answerable} unanswerable; model {args.model or 'default'}\n")
    _print_table(tables)
    if len(tables) > 1 or args.show_lengths:
        print("\nBy prompt length (answerable questions):\n")
        _print_table(lengths)


def _models_file(model_id: str, scratch: Path) -> Path:
    """models.json with `model_id` as the default (the benchmark compares models on one question set)."""
    registry = json.loads((ROOT / "models.json").read_text())
    if not any(model["id"] == model_id for model in registry["models"]):
        raise SystemExit(f"{model_id} is not in models.json")
    for model in registry["models"]:
        model["default"] = model["id"] == model_id
    path = scratch / "models.json"
    path.write_text(json.dumps(registry))
    return path


def _print_table(tables: dict[str, dict[str, str]]) -> None:
    names = list(tables)
    measures = list(dict.fromkeys(measure for table in tables.values() for measure in table))
    print("| measure | " + " | ".join(names) + " |")
    print("| --- |" + " --- |" * len(names))
    for measure in measures:
        print(f"| {measure} | " + " | ".join(tables[name].get(measure, "-") for name in names) + " |")


def _show(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        mark = "ok  " if row.get("useful") else "REF " if row["refusal"] else "    "
        print(f"{mark}{row['kind']:9} {row['seconds']:5.1f}s {row['question'][:60]!r} -> {row['answer'][:140]!r}")


# --- known-facts suite -------------------------------------------------------------------------

def run_facts(mode: str, documents: list[Path], model_cache: Path) -> dict[str, Any]:
    with serving(documents, model_cache, mode) as server:
        results = []
        for conversation in [[turn] for turn in SINGLE] + CONVERSATIONS:
            session = server.client.post("/chat/start", json={}, headers=server.headers).get_json()["sessionId"]
            for number, turn in enumerate(conversation):
                body, seconds, _ = server.ask(turn.question, session=session)
                results.append(_scored(turn, body, follow_up=number > 0, seconds=seconds))
                results[-1]["quote_correct"] = _correct(turn, plain_quote(server.given_sources(body, turn.question)))
        return {"mode": mode, "results": results}


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
    parser.add_argument("--suite", choices=("all", "faq", "facts"), default="all")
    parser.add_argument("--strategies", default="default",
                        help=f"comma-separated, of {', '.join(STRATEGIES)}: each asks every FAQ question")
    parser.add_argument("--model", help="a models.json id to answer with (default: the default model)")
    parser.add_argument("--limit", type=int, default=0, help="ask only this many FAQ questions, spread evenly")
    parser.add_argument("--whole-chunks", action="store_true",
                        help="give the model whole chunks, not passages (longer prompts: the table's other rows)")
    parser.add_argument("--save", help="write each strategy's scored answers to PATH.<strategy>.json")
    parser.add_argument("--show-answers", action="store_true")
    parser.add_argument("--show-lengths", action="store_true", help="the FAQ table by prompt length too")
    args = parser.parse_args()
    if args.suite in ("all", "faq") and faq.missing():
        raise SystemExit(f"missing {', '.join(map(str, faq.missing()))}: install {' '.join(faq.PACKAGES)} "
                         "(make bench-answers does, as root)")
    model_cache = Path(os.environ.get("MODEL_CACHE_DIR", tempfile.mkdtemp(prefix="answers-models-")))
    if args.suite in ("all", "faq"):
        run_faq(args, model_cache)
    if args.suite in ("all", "facts"):
        facts_suite(args, model_cache)


def facts_suite(args: argparse.Namespace, model_cache: Path) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="answers-docs-"))
    documents = list(make_all(scratch).values()) + [make_pdf_pages(scratch / "bridge.pdf", BRIDGE_PAGES,
                                                                   title="Bridges of the Wend")]
    runs = [run_facts(mode, documents, model_cache) for mode in ("dense", "hybrid")]
    tables = {entry["mode"]: summary(entry["results"]) for entry in runs}
    print(f"\nAnswers to {len(runs[0]['results'])} known-fact questions ({len(SINGLE)} single-turn, "
          f"{sum(len(c) for c in CONVERSATIONS)} in {len(CONVERSATIONS)} conversations), default generation settings\n")
    _print_table(tables)
    if args.show_answers:
        for entry in runs:
            for row in entry["results"]:
                mark = "ok " if row["correct"] else "MISS"
                print(f"{entry['mode']:6} {mark} [{row['first']}] {row['question']} -> {row['answer'][:100]!r}")


if __name__ == "__main__":
    main()
