"""Chat through HTTP with the real model and real documents: grounded answers, citations, sessions,
summaries, streaming and its error paths."""
from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from api.streaming import parse_events
from llm.settings import GenerationOverrides
from tests.conftest import Users, assert_error, upload

GREEDY = {"num_beams": 1, "temperature": 0, "max_new_tokens": 48}
LENS = "How often does the lighthouse keeper polish the brass lens?"
ROUTER = "How long must I hold the button to reset the Zephyr-9 router?"
OFF_TOPIC = "What is the capital city of Mongolia?"
LONG_ANSWER = "Tell me a long story about the lighthouse keeper and the brass lens, with many details."  # greedy: 200+ tokens


def _start(client, account, **body: Any) -> dict[str, Any]:
    response = client.post("/chat/start", json=body, headers=account.headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def _ask(client, account, session_id: str, message: str, **body: Any):
    return client.post("/chat/message", json={"sessionId": session_id, "message": message,
                                              "generation": GREEDY, **body}, headers=account.headers)


def _answer(client, account, session_id: str, message: str, **body: Any) -> dict[str, Any]:
    response = _ask(client, account, session_id, message, **body)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


@pytest.fixture
def alice_with_documents(llm_app, samples):
    client = llm_app.test_client()
    alice = Users(llm_app, client).register()
    for kind in ("pdf", "md"):
        assert upload(client, alice, samples[kind]).status_code == 201
    return llm_app, client, alice


def test_the_answer_states_the_fact_and_cites_its_page(alice_with_documents):
    _, client, alice = alice_with_documents
    started = _start(client, alice, message=LENS, generation=GREEDY)
    user_turn, reply = started["messages"]
    assert user_turn == {**user_turn, "role": "user", "content": LENS}
    assert "thursday" in reply["content"].lower(), reply
    assert started["sources"] and started["sources"][0]["filename"] == "harbour.pdf"
    assert started["sources"][0]["page"] == 2 and started["sources"][0]["excerpt"]
    assert reply["sources"] == started["sources"]
    assert started["title"] == LENS  # a new session is named after its first question

    body = _answer(client, alice, started["sessionId"], ROUTER)
    assert "seventeen" in body["reply"]["content"].lower(), body["reply"]
    assert body["sources"][0]["filename"] == "zephyr.md" and body["sources"][0]["page"] is None
    assert body["sources"][0]["section"] == "Factory reset"
    assert body["usage"]["prompt_tokens"] > 50 and 0 < body["usage"]["completion_tokens"] <= 48
    assert body["generation"]["strategy"] == "greedy" and body["generation"]["max_new_tokens"] == 48
    assert body["context"]["history_messages"] == 2 and body["context"]["sources_given"] == len(body["sources"])
    stored = client.get(f"/chat/sessions/{started['sessionId']}", headers=alice.headers).get_json()["messages"]
    assert [m["content"] for m in stored] == [LENS, reply["content"], ROUTER, body["reply"]["content"]]


def test_no_relevant_context_means_no_invented_answer_and_no_sources(alice_with_documents):
    _, client, alice = alice_with_documents
    session = _start(client, alice)["sessionId"]
    body = _answer(client, alice, session, OFF_TOPIC)
    assert body["sources"] == [] and body["reply"]["sources"] == []
    assert "could not find anything in your documents" in body["reply"]["content"]
    assert body["usage"] == {"prompt_tokens": 0, "completion_tokens": 0} and body["generation"]["strategy"] == "none"
    assert body["reply"]["finish_reason"] == "no_context"


def test_another_users_documents_are_never_retrieved(alice_with_documents):
    app, client, _ = alice_with_documents
    bob = Users(app, client).register()
    session = _start(client, bob)["sessionId"]
    body = _answer(client, bob, session, LENS)
    assert body["sources"] == [] and "thursday" not in body["reply"]["content"].lower()


def test_a_session_continues_across_a_restart(make_llm_app, samples):
    first = make_llm_app()
    client = first.test_client()
    alice = Users(first, client).register()
    assert upload(client, alice, samples["md"]).status_code == 201
    session = _start(client, alice, message=ROUTER, generation=GREEDY)["sessionId"]

    restarted = make_llm_app()  # same data directory and database: a restart
    client = restarted.test_client()
    alice = Users(restarted, client).login(alice.username, alice.password)
    before = client.get(f"/chat/sessions/{session}", headers=alice.headers).get_json()
    assert len(before["messages"]) == 2 and "seventeen" in before["messages"][1]["content"].lower()
    body = _answer(client, alice, session, "Which button do I hold to reset the Zephyr-9 router?")
    assert body["context"]["history_messages"] == 2 and body["sources"][0]["filename"] == "zephyr.md"
    assert client.get("/chat/sessions", headers=alice.headers).get_json()["sessions"][0]["message_count"] == 4


def test_a_long_conversation_is_summarized_and_the_summary_is_used(make_llm_app, samples):
    app = make_llm_app(chat_history_tokens=160, chat_summary_tokens=64)
    client = app.test_client()
    alice = Users(app, client).register()
    assert upload(client, alice, samples["md"]).status_code == 201
    session = _start(client, alice)["sessionId"]
    questions = [
        "My name is Ingrid and I look after the Zephyr-9 routers in our office. " + ROUTER,
        "Is there anything to do before resetting the Zephyr-9 router, like unplugging it?",
        "Which button on the Zephyr-9 router is used for the factory reset?",
        "How long do I hold the Zephyr-9 reset button again?",
    ]
    contexts = [_answer(client, alice, session, question)["context"] for question in questions]
    assert contexts[0]["summary_used"] is False
    assert contexts[-1]["summary_used"] is True
    assert contexts[-1]["history_messages"] < 2 * (len(questions) - 1)
    stored = client.get(f"/chat/sessions/{session}", headers=alice.headers).get_json()
    assert len(stored["messages"]) == 2 * len(questions)  # the summary replaces turns in prompts, not in storage
    assert stored["summary"] and stored["summarized_messages"] >= 2
    assert "zephyr" in stored["summary"].lower() or "router" in stored["summary"].lower(), stored["summary"]


def test_a_turn_over_the_question_budget_is_refused(make_llm_app):
    app = make_llm_app(chat_question_tokens=20)
    client = app.test_client()
    alice = Users(app, client).register()
    session = _start(client, alice)["sessionId"]
    error = assert_error(_ask(client, alice, session, "Please tell me " + "more and more " * 20), 400, "VALIDATION_ERROR")
    assert error["details"]["fields"][0]["field"] == "message" and "tokens" in error["error"]
    assert client.get(f"/chat/sessions/{session}", headers=alice.headers).get_json()["messages"] == []


# --- streaming ---------------------------------------------------------------------------------

def test_streamed_events_come_in_order_and_done_is_the_json_answer(alice_with_documents):
    _, client, alice = alice_with_documents
    session = _start(client, alice)["sessionId"]
    response = _ask(client, alice, session, LENS, stream=True)
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    events = parse_events(response.get_data(as_text=True))
    names = [name for name, _ in events]
    assert names[0] == "sources" and names[-1] == "done" and set(names[1:-1]) == {"token"} and len(names) > 4
    sources, done = events[0][1], events[-1][1]
    assert sources == done["sources"] and sources[0]["page"] == 2
    assert set(done) == {"sessionId", "reply", "sources", "usage", "generation", "context", "grounding"}
    assert done["grounding"] == done["reply"]["grounding"] and done["grounding"]["sentences"]
    assert "".join(data["text"] for name, data in events if name == "token").strip() == done["reply"]["content"]
    assert "thursday" in done["reply"]["content"].lower()
    stored = client.get(f"/chat/sessions/{session}", headers=alice.headers).get_json()["messages"]
    assert stored[-1]["content"] == done["reply"]["content"]


def test_every_answer_says_which_of_its_sentences_the_sources_support(alice_with_documents):
    """Issue 18, point 4: `grounding` in the answer, stored with it, and in /v1's extension field."""
    llm_app, client, alice = alice_with_documents
    started = _start(client, alice, message=LENS, generation=GREEDY)
    reply = started["messages"][-1]
    grounding = reply["grounding"]
    judged = [sentence for sentence in grounding["sentences"] if sentence["supported"] is not None]
    assert judged and grounding["supported_share"] > 0
    thursday = next(sentence for sentence in judged if "thursday" in sentence["text"].lower())
    assert thursday["supported"] and started["sources"][thursday["source"] - 1]["filename"] == "harbour.pdf"
    assert reply["content"][thursday["start"]:thursday["end"]] == thursday["text"]
    stored = client.get(f"/chat/sessions/{started['sessionId']}", headers=alice.headers).get_json()["messages"]
    assert stored[-1]["grounding"] == grounding
    model = client.get("/models", headers=alice.headers).get_json()["active"]
    completion = client.post("/v1/chat/completions", headers=alice.headers, json={
        "model": f"{model}+rag", "max_tokens": 48, "temperature": 0,
        "messages": [{"role": "user", "content": LENS}]}).get_json()
    assert completion["grounding"]["sentences"] and completion["sources"]
    plain = client.post("/v1/chat/completions", headers=alice.headers, json={
        "model": model, "max_tokens": 4, "messages": [{"role": "user", "content": "Hello"}]}).get_json()
    assert "grounding" not in plain  # nothing to check without retrieval


def test_accept_event_stream_also_streams(alice_with_documents):
    _, client, alice = alice_with_documents
    session = _start(client, alice)["sessionId"]
    response = client.post("/chat/message", json={"sessionId": session, "message": OFF_TOPIC},
                           headers={**alice.headers, "Accept": "text/event-stream"})
    events = parse_events(response.get_data(as_text=True))
    assert [name for name, _ in events] == ["sources", "token", "done"] and events[0][1] == []


def test_errors_before_the_first_token_are_plain_json(make_llm_app, app, users):
    # No model loaded yet: 503 as JSON, not a stream.
    alice = users.register()
    session = app.test_client().post("/chat/start", json={}, headers=alice.headers).get_json()["sessionId"]
    response = app.test_client().post("/chat/message", json={"sessionId": session, "message": LENS, "stream": True},
                                      headers=alice.headers)
    assert_error(response, 503, "MODEL_NOT_READY")
    assert response.headers["Retry-After"]
    # Unknown session: 404 as JSON.
    loaded = make_llm_app(llm_max_queue=1)
    client = loaded.test_client()
    bob = Users(loaded, client).register()
    assert_error(_ask(client, bob, "missing", LENS, stream=True), 404, "NOT_FOUND")
    # A full queue: 503 QUEUE_FULL as JSON, with Retry-After; the turn is not stored.
    session = _start(client, bob)["sessionId"]
    llm = loaded.extensions["docchat"].llm
    busy = llm.submit([{"role": "user", "content": "Tell me a very long story about the sea."}],
                      GenerationOverrides(num_beams=1, temperature=0, max_new_tokens=400))
    try:
        assert upload(client, bob, _write_fact(loaded)).status_code == 201
        full = _ask(client, bob, session, "When does the harbour ferry leave in the morning?", stream=True)
        assert_error(full, 503, "QUEUE_FULL")
        assert int(full.headers["Retry-After"]) >= 1
    finally:
        busy.cancel()
    assert client.get(f"/chat/sessions/{session}", headers=bob.headers).get_json()["messages"] == []


def _write_fact(app) -> Any:
    path = app.extensions["docchat"].config.data_dir / "ferry.txt"
    path.write_text("Harbour timetable.\n\nThe harbour ferry leaves at 7:45 every morning from pier two.\n")
    return path


def test_an_error_after_the_first_token_is_an_error_event_and_the_session_still_reads(make_llm_app, samples):
    # On the transformers engine (decode under 30 tok/s here) with 3 s: the first token comes well
    # within it even on a busy machine (prefill ~0.3 s), and the 256 tokens asked for take far
    # longer. (llama.cpp would finish them in time; its deadline has its own test.)
    app = make_llm_app(llm_timeout_s=3)
    app.extensions["docchat"].llm.manager.swap("smollm2-135m-instruct-transformers")
    client = app.test_client()
    alice = Users(app, client).register()
    assert upload(client, alice, samples["pdf"]).status_code == 201
    session = _start(client, alice)["sessionId"]
    response = _ask(client, alice, session, LONG_ANSWER,
                    stream=True, generation={"num_beams": 1, "temperature": 0, "max_new_tokens": 600,
                                             "repetition_penalty": 1.3})  # no loop that would end it early
    assert response.status_code == 200
    events = parse_events(response.get_data(as_text=True))
    names = [name for name, _ in events]
    assert names[0] == "sources" and "token" in names and names[-1] == "error" and "done" not in names
    assert events[-1][1]["code"] == "GENERATION_TIMEOUT" and events[-1][1]["error"]
    stored = client.get(f"/chat/sessions/{session}", headers=alice.headers).get_json()["messages"]
    assert [m["role"] for m in stored] == ["user", "assistant"] and stored[1]["finish_reason"] == "error"
    assert stored[1]["content"] == "".join(data["text"] for name, data in events if name == "token").strip()


def test_a_client_that_leaves_mid_stream_stops_generation_and_leaves_a_readable_session(alice_with_documents):
    app, client, alice = alice_with_documents
    session = _start(client, alice)["sessionId"]
    response = client.post("/chat/message", headers=alice.headers, buffered=False, json={
        "sessionId": session, "message": LONG_ANSWER,
        "stream": True, "generation": {"num_beams": 1, "temperature": 0, "max_new_tokens": 400}})
    chunks = iter(response.response)
    received = [next(chunks) for _ in range(4)]  # sources and three tokens
    assert b"event: sources" in received[0]
    response.close()  # the client goes away
    llm = app.extensions["docchat"].llm
    deadline = time.monotonic() + 30
    while llm.scheduler.depth() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert llm.scheduler.depth() == 0
    stored = client.get(f"/chat/sessions/{session}", headers=alice.headers).get_json()["messages"]
    assert [m["role"] for m in stored] == ["user", "assistant"] and stored[1]["finish_reason"] == "cancelled"
    assert stored[1]["content"]
    follow_up = _answer(client, alice, session, LENS)  # the session goes on
    assert follow_up["context"]["history_messages"] == 2


def test_concurrent_questions_in_one_session_are_both_kept(alice_with_documents):
    _, client, alice = alice_with_documents
    session = _start(client, alice)["sessionId"]
    results: list[int] = []

    def ask(question: str) -> None:
        results.append(_ask(client, alice, session, question).status_code)

    threads = [threading.Thread(target=ask, args=(question,)) for question in (LENS, ROUTER)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200, 200]
    stored = client.get(f"/chat/sessions/{session}", headers=alice.headers).get_json()["messages"]
    assert [m["role"] for m in stored] == ["user", "assistant"] * 2
