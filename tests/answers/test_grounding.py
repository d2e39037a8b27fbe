"""The grounding check (issue 18, point 4): each sentence of an answer with the source that
supports it best; a sentence its sources do not back is marked unsupported."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from answers.grounding import SUPPORTED_AT, GroundingChecker
from common.text import sentences_of
from rag.embedder import Embedder, packaged_model_path


@dataclass(frozen=True)
class Given:
    document_id: str
    page: int | None
    text: str


SOURCES = [
    Given("harbour", 2, "The lighthouse keeper on Skerry Point polishes the brass lens every Thursday at dawn. "
                        "The lamp was converted to electricity in 1958."),
    Given("router", None, "To reset the Zephyr-9 router, hold the recessed button for exactly seventeen seconds. "
                          "Unplug the router first."),
]


@pytest.fixture(scope="module")
def checker() -> GroundingChecker:
    embedder = Embedder.shared(packaged_model_path(), "cpu", "bfloat16")
    return GroundingChecker(lambda: embedder)


def test_a_hand_made_answer_with_one_invented_sentence_has_exactly_that_one_marked(checker):
    answer = ("The keeper polishes the brass lens every Thursday at dawn. "
              "Hold the recessed button for seventeen seconds to reset the router. "
              "The lighthouse was painted red by the navy in 1990. "
              "I hope this helps.")
    grounding = checker.check(answer, SOURCES).as_dict()
    verdicts = [(sentence["text"], sentence["supported"], sentence["source"]) for sentence in grounding["sentences"]]
    assert verdicts == [
        ("The keeper polishes the brass lens every Thursday at dawn.", True, 1),
        ("Hold the recessed button for seventeen seconds to reset the router.", True, 2),
        ("The lighthouse was painted red by the navy in 1990.", False, verdicts[2][2]),
        ("I hope this helps.", None, None),  # no claim in it: not judged
    ]
    scores = [sentence["score"] for sentence in grounding["sentences"][:3]]
    assert scores[0] >= 0.8 and scores[1] >= 0.7 and scores[2] < SUPPORTED_AT, scores
    assert grounding["supported_share"] == round(2 / 3, 3) and grounding["unsupported"] == 1
    first = grounding["sentences"][0]
    assert answer[first["start"]:first["end"]] == first["text"] and first["document_id"] == "harbour"
    assert first["page"] == 2


def test_a_number_the_source_does_not_hold_makes_a_sentence_unsupported(checker):
    right, wrong = (checker.check(f"The lamp was converted to electricity in {year}.", SOURCES).as_dict()["sentences"][0]
                    for year in (1958, 1962))
    assert right["supported"] is True and wrong["supported"] is False


def test_sentences_keep_their_offsets():
    text = "First one. Second one!\nThird without a stop"
    assert [(part, text[start:end]) for part, start, end in sentences_of(text)] == [
        ("First one.", "First one."), ("Second one!", "Second one!"), ("Third without a stop", "Third without a stop")]
