"""The answer benchmark's scorer (bench/answer_scores.py) on the real SQLite FAQ: a wrong score would
make every figure in the README's answer table wrong."""
from __future__ import annotations

import pytest

from bench import answer_scores as score
from bench import faq

pytestmark = pytest.mark.skipif(bool(faq.missing()), reason=f"{' '.join(faq.PACKAGES)} are not all installed "
                                "(make test installs them)")


@pytest.fixture(scope="module")
def autoincrement(tmp_path_factory) -> faq.FaqEntry:
    _, entries = faq.documents(tmp_path_factory.mktemp("faq"), print_pdf=False)
    return next(entry for entry in entries if entry.question == "How do I create an AUTOINCREMENT field?")


def test_the_faq_gives_each_question_the_text_under_its_heading(tmp_path):
    _, entries = faq.documents(tmp_path, print_pdf=False)
    sqlite = [entry for entry in entries if entry.filename == "sqlite-faq.html"]
    assert len(sqlite) >= 25 and len(entries) + len(faq.UNANSWERABLE) >= 170
    ecc = next(entry for entry in sqlite if "ECCN" in entry.question)
    assert "EAR99" in ecc.gold and "column name" not in ecc.gold  # ends where the next question starts


def test_an_answer_from_the_gold_section_is_useful_and_one_from_elsewhere_is_not(autoincrement):
    section = autoincrement.gold[:600]
    right = "A column declared INTEGER PRIMARY KEY will autoincrement [1]."
    assert score.is_useful(right, "generated", autoincrement.gold, [section])
    assert not score.is_useful(right, "generated", autoincrement.gold, ["SQLite uses dynamic typing for columns."])
    wrong = "Use the SERIAL type, as PostgreSQL does, and a sequence object."
    assert not score.is_useful(wrong, "generated", autoincrement.gold, [section])
    quote = f"Quoted from sqlite-faq.html [1]:\n\n> {section[:120]}"
    assert score.is_useful(quote, "quote", autoincrement.gold, [section])


def test_refusals_markup_and_changed_facts_are_caught():
    assert score.is_refusal("The documents do not say how to do that.", "generated")
    assert score.is_refusal("anything", "no_context")
    assert not score.is_refusal("Use git commit --amend to change the last commit.", "generated")
    assert score.echoes_markup("</source>\nThe answer") and score.echoes_markup("Answer: yes")
    assert not score.echoes_markup("Set user.name to your name.")
    source = "Run git commit --amend; the largest key 9223372036854775807 is then used. See /etc/gitconfig."
    assert score.copies_exactly("Use `git commit --amend` [1]; the key is 9223372036854775807 [2].", source)
    assert not score.copies_exactly("The key is 9223372036854775806 [1].", source)
    assert not score.copies_exactly("Edit /etc/git.conf instead.", source)
