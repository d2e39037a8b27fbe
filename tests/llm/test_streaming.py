"""Answers stream from their first agreed token, beam search included, and report their speed
(issue 15: streaming with beam search; time to first token and decode speed with every answer)."""
from __future__ import annotations

import re

import pytest

from api.streaming import parse_events
from tests.conftest import Users, upload
from tests.prompts import FERRY

FACT = "Harbour timetable.\n\nThe harbour ferry leaves at 7:45 every morning from pier two.\n"
QUESTION = "When does the harbour ferry leave in the morning?"


@pytest.mark.parametrize("model", ["smollm2-135m-instruct", "smollm2-135m-instruct-transformers"])
def test_a_streamed_beam_answer_is_exactly_the_beam_answer_and_starts_before_it_ends(llm_app, model):
    """The default settings pick beam search for a short prompt; the stream must not change it,
    on llama.cpp (the default) and on transformers."""
    llm = llm_app.extensions["docchat"].llm
    llm.manager.swap(model)
    whole = llm.generate(FERRY)
    assert whole.settings.strategy == "beam" and whole.settings.num_beams == 3
    pieces: list[str] = []
    streamed = llm.submit(FERRY, on_token=pieces.append).result(timeout=300)
    assert "".join(pieces) == streamed.text == whole.text
    assert len(pieces) >= 2  # the end sends at most one piece: the first came while beams were searching


def test_beam_answers_stream_over_http_and_match_the_stored_answer(llm_app):
    client = llm_app.test_client()
    alice = Users(llm_app, client).register()
    fact = llm_app.extensions["docchat"].config.data_dir / "ferry.txt"
    fact.write_text(FACT)
    assert upload(client, alice, fact).status_code == 201
    streamed_session = client.post("/chat/start", json={}, headers=alice.headers).get_json()["sessionId"]
    response = client.post("/chat/message", json={"sessionId": streamed_session, "message": QUESTION, "stream": True},
                           headers=alice.headers)
    events = parse_events(response.get_data(as_text=True))
    names = [name for name, _ in events]
    assert names[0] == "sources" and names[-1] == "done" and names.count("token") >= 2, names
    done = events[-1][1]
    assert done["generation"]["strategy"] == "beam"
    assert "".join(data["text"] for name, data in events if name == "token") == done["reply"]["content"]
    plain_session = client.post("/chat/start", json={}, headers=alice.headers).get_json()["sessionId"]
    plain = client.post("/chat/message", json={"sessionId": plain_session, "message": QUESTION},
                        headers=alice.headers).get_json()
    assert plain["reply"]["content"] == done["reply"]["content"] and "7:45" in plain["reply"]["content"]


def test_every_answer_reports_its_time_to_first_token_and_decode_speed(llm_app):
    client = llm_app.test_client()
    alice = Users(llm_app, client).register()
    key = client.post("/auth/api-keys", json={"name": "k"}, headers=alice.headers).get_json()["key"]
    body = {"model": "smollm2-135m-instruct", "temperature": 0, "max_tokens": 12,
            "messages": [{"role": "user", "content": "Name three colours."}]}
    answer = client.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}).get_json()
    generation = answer["generation"]
    assert generation["ttft_s"] > 0 and generation["strategy"] == "greedy"
    assert generation["decode_tokens_per_s"] > 0 and answer["usage"]["completion_tokens"] > 1
    chunks = client.post("/v1/chat/completions", json={**body, "stream": True},
                         headers={"Authorization": f"Bearer {key}"}).get_data(as_text=True)
    assert '"decode_tokens_per_s"' in chunks and '"ttft_s"' in chunks
    metrics = client.get("/metrics").get_data(as_text=True)
    count = re.search(r'docchat_time_to_first_token_seconds_count\{model="smollm2-135m-instruct"\} (\d+)', metrics)
    assert count is not None and int(float(count.group(1))) >= 2
    assert 'docchat_decode_tokens_per_second_count{model="smollm2-135m-instruct"}' in metrics
