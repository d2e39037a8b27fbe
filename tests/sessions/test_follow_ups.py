"""Conversation-aware retrieval (issue 18, point 3): a follow-up that only implies its subject is
searched together with it, and answered from what was retrieved for it, not from the previous
answer. The real model, a two-page PDF with one fact per page."""
from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.samples import BRIDGE_PAGES, make_pdf_pages
from tests.conftest import Users, upload, wait_for
from tests.llm.test_remote_llm import fake, remote_app  # noqa: F401 - fixtures

GREEDY = {"max_new_tokens": 40}  # the adaptive settings (beam search for short prompts)
TURNS = [
    ("Who opened the Orion footbridge?", "matilda", 1),
    ("And why was it closed?", "flood", 2),
]


@pytest.fixture
def bridge(llm_app, tmp_path: Path):  # type: ignore[no-untyped-def]
    client = llm_app.test_client()
    account = Users(llm_app, client).register()
    path = make_pdf_pages(tmp_path / "bridge.pdf", BRIDGE_PAGES, title="Bridges of the Wend")
    assert upload(client, account, path).status_code == 201
    return client, account


def test_which_questions_refer_back():
    from sessions.chat import is_follow_up

    assert is_follow_up("And why was it closed?")
    assert is_follow_up("Which company built it and what colour was it painted after the repairs?")
    assert not is_follow_up("Which company built the Orion footbridge over the river Wend?")


def test_a_follow_up_is_answered_from_its_own_page(bridge):
    client, account = bridge
    session = client.post("/chat/start", json={}, headers=account.headers).get_json()["sessionId"]
    for question, fact, page in TURNS:
        body = client.post("/chat/message", json={"sessionId": session, "message": question, "generation": GREEDY},
                           headers=account.headers).get_json()
        assert body["sources"][0]["page"] == page, (question, body["sources"])
        assert fact in body["reply"]["content"].lower(), (question, body["reply"]["content"])


def test_a_follow_up_is_asked_standalone_not_from_the_earlier_answers(bridge):
    """After a turn about the other bridge, "What colour was it painted?" is asked as "... (About:
    the Orion footbridge)" without the earlier turns: with them, the model answered about the Vega
    bridge or repeated an earlier answer."""
    client, account = bridge
    session = client.post("/chat/start", json={}, headers=account.headers).get_json()["sessionId"]
    for question in ("Why was the Vega railway bridge closed?", "Which ironworks built the Orion footbridge?"):
        asked = client.post("/chat/message", json={"sessionId": session, "message": question, "generation": GREEDY},
                            headers=account.headers)
        assert asked.status_code == 200, asked.get_json()
        assert asked.get_json()["context"]["history_messages"] > 0 or question.startswith("Why")
        assert asked.get_json()["context"]["asked_as"] is None  # each names its own subject
    body = client.post("/chat/message", json={"sessionId": session, "message": "What colour was it painted?",
                                              "generation": GREEDY}, headers=account.headers).get_json()
    answer = body["reply"]["content"].lower()
    assert "green" in answer and "vega" not in answer, answer
    assert body["context"]["history_messages"] == 0 and body["sources"][0]["page"] == 1
    assert body["context"]["asked_as"] == "What colour was it painted? (About: the Orion footbridge)"


def test_the_noun_phrase_parser_loads_at_start(remote_app):  # noqa: F811
    """A server that loads its model at start loads spaCy's parser beside it, so the first follow-up
    does not wait for it (~3 s)."""
    from ingest import spacy_model

    spacy_model._parser.cache_clear()
    remote_app()  # start_background_work, a document, a session: no follow-up asked
    wait_for(lambda: spacy_model._parser.cache_info().currsize == 1, 60, "spaCy's parser loaded at start")
