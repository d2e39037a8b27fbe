"""Answers copy facts exactly and never echo the prompt's markup (issue 26, point 1; llm/faithful.py).

With the real model over HTTP: facts that reuse digits and short tokens the answer has already
written come back exactly; the stop strings end an answer where it starts to write markup."""
from __future__ import annotations

from pathlib import Path

import pytest

from common.text import sentence_limit_cut
from fixtures.samples import make_pdf_pages
from llm.faithful import (
    MARKUP_STOPS,
    answer_end,
    held_back,
    penalised_tokens,
    repeats_itself,
    stop_index,
    unpenalised_tokens,
)
from llm.settings import GenerationOverrides
from tests.conftest import Users, upload

VOYAGER = [
    "Voyager 1 is a space probe. Voyager 1 was launched on September 5, 1977, from Cape Canaveral aboard a "
    "Titan IIIE rocket. Its magnetometer boom and instruments together weigh 61 kilograms.",
    "Mission log, page two: Voyager 1 entered interstellar space in August 2012, the first probe to do so.",
]
TOOLS = [
    "Printing: version 10.4.11 of the printer tools reads the default paper size from the file /etc/papersize. "
    "To find which installed package owns a file, run the command dpkg --search with the path of the file.",
]
QUESTIONS = [  # (question, the fact exactly as the document writes it)
    ("When was the Voyager 1 probe launched?", "1977"),
    ("When did Voyager 1 enter interstellar space?", "2012"),
    ("How much do the magnetometer boom and instruments of Voyager 1 weigh?", "61 kilograms"),
    ("Which version of the printer tools reads the default paper size?", "10.4.11"),
    ("Which file holds the default paper size?", "/etc/papersize"),
    ("Which command finds the installed package that owns a file?", "dpkg --search"),
]


def test_a_loop_is_the_answers_last_tokens_written_before() -> None:
    assert repeats_itself([1, 2, 3] + list(range(10, 20)) * 2)
    assert not repeats_itself(list(range(40)))
    assert not repeats_itself([7] * 19)  # shorter than two spans: not yet
    assert repeats_itself([7] * 20)


def test_stop_strings_cut_and_hold_back() -> None:
    text = "It launched in 1977.\n</source>\n<source id=2>"
    assert text[:stop_index(text, MARKUP_STOPS)] == "It launched in 1977.\n"
    assert stop_index("1977 and 2012", MARKUP_STOPS) is None
    assert held_back("launched in 1977 </sou", MARKUP_STOPS) == len("</sou")
    assert held_back("a < b", MARKUP_STOPS) == 0


def test_the_sentence_limit_ends_the_answer_where_the_next_sentence_begins() -> None:
    text = "Run it like this:\n```\nls -l\ncd /tmp\n```\n1. Open it. Version 10.4.11 is fine. Then close it. More."
    assert text[:sentence_limit_cut(text, 3)] == text[:text.index(" Then")]  # code, "1." and 10.4.11 whole
    assert sentence_limit_cut(text, 4) == text.index(" More") and sentence_limit_cut(text, 5) is None
    assert sentence_limit_cut(text, 0) is None
    assert answer_end("One. Two. <source id=2>", MARKUP_STOPS, 1) == 4
    assert answer_end("One. Two. <source id=2>", MARKUP_STOPS, 3) == len("One. Two. ")


def test_a_penalty_spares_digits_punctuation_and_the_prompt(llm_app) -> None:
    tokenizer = llm_app.extensions["docchat"].llm.manager.engine().tokenizer
    spared = unpenalised_tokens(tokenizer)
    digits = tokenizer("1977, 2012. 10.4.11", add_special_tokens=False)["input_ids"]
    words = tokenizer(" Voyager launched rocket", add_special_tokens=False)["input_ids"]
    assert set(digits) <= spared and not set(words) & spared
    prompt = set(tokenizer(" Cape Canaveral", add_special_tokens=False)["input_ids"])
    assert penalised_tokens(digits + words + list(prompt), spared | prompt) == sorted(set(words) - prompt)


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("faithful")
    return [make_pdf_pages(folder / "voyager.pdf", VOYAGER, title="Voyager notes"),
            make_pdf_pages(folder / "printing.pdf", TOOLS, title="Printing notes")]


def test_facts_come_back_exactly_over_http(llm_app, documents: list[Path]) -> None:
    """The default settings (beam search for these short prompts, no penalty): the year that reuses
    the digits of "Voyager 1" and "5," and the other facts are copied as the document writes them,
    by the model itself for the Voyager questions (the others may come back as a quote of the
    passage when the model only echoes its prompt). A penalty a request asks for spares digits and the prompt's
    tokens: without that, 1.15 turned both Voyager years into "September 5, 2017"."""
    client = llm_app.test_client()
    account = Users(llm_app, client).register()
    for path in documents:
        assert upload(client, account, path).status_code == 201
    wrong = []
    penalised = [(question, fact, {"repetition_penalty": 1.15}) for question, fact in QUESTIONS[:2]]
    for question, fact, generation in [(question, fact, {}) for question, fact in QUESTIONS] + penalised:
        session = client.post("/chat/start", json={}, headers=account.headers).get_json()["sessionId"]
        body = client.post("/chat/message", json={"sessionId": session, "message": question, "generation": generation},
                           headers=account.headers).get_json()
        answer = body["reply"]["content"]
        kind = body["reply"]["answer_kind"]  # the Voyager answers must be the model's own, not a quote
        if fact not in answer or "<" in answer or (kind != "generated" and "Voyager" in question):
            wrong.append((question, answer, body["reply"]["answer_kind"]))
    assert not wrong


def test_markup_ends_the_answer_streamed_or_not(llm_app) -> None:
    """A raw continuation inside the prompt's markup: without stops the model writes the closing tag
    and the next source; with them the answer ends before the tag, and the streamed pieces are
    exactly the answer."""
    llm = llm_app.extensions["docchat"].llm
    prompt = ('<documents>\n<source id="1" file="ferry.txt">\nThe ferry leaves at 7:45.\n</source>\n'
              '<source id="2" file="bakery.txt">\nThe bakery closes at 18:15.\n</source>\n'
              '<source id="3" file="museum.txt">\nThe museum opens at 10:30 every day.\n')
    greedy = GenerationOverrides(num_beams=1, temperature=0.0, max_new_tokens=60)
    unstopped = llm.generate(prompt, greedy)
    assert stop_index(unstopped.text, MARKUP_STOPS) is not None, unstopped.text  # the check can fail
    pieces: list[str] = []
    stopped = llm.generate(prompt, greedy, on_token=pieces.append, stops=MARKUP_STOPS)
    assert stop_index(stopped.text, MARKUP_STOPS) is None and stopped.finish_reason == "stop"
    assert unstopped.text.startswith(stopped.text) and "".join(pieces) == stopped.text
    whole = llm.generate(prompt, greedy, stops=MARKUP_STOPS)
    assert whole.text == stopped.text and whole.completion_tokens < unstopped.completion_tokens
