"""How an answer to a FAQ question is scored, automatically (bench/answers.py prints the table).

- useful: not a refusal, most (USEFUL_SHARE) of the answer's content words are in the gold answer,
  and a cited source is from the gold section (most of its content words are in the gold answer,
  or it holds most of the gold answer's). A quote is scored on its passage, not on its
  "Quoted from ..." line.
- exact copy: every fact the answer writes - a token with a digit, a path, an option, a dotted or
  underscored name, a `code` span (answers.grounding.exact_facts) - appears character for character in
  the sources it was given or in the question.
- markup echo: the answer holds the prompt's markup, a chat-template tag, an HTML tag or a role label.
- refusal: the reply says the documents do not cover the question (`no_context`, or words to that
  effect from the model).
"""
from __future__ import annotations

import re
import statistics
from collections.abc import Sequence

from answers.grounding import content_words, exact_facts, invented_facts

USEFUL_SHARE = 0.5
SECTION_SHARE = 0.5
_QUOTE_HEADER = re.compile(r"^Quoted from [^\n]*\n+", re.IGNORECASE)
_ECHO = re.compile(r"<\s*/?\s*(?:documents?|source|script|style|iframe|img|system|user|assistant)\b|<\|"
                   r"|^\s*(?:question|answer|user|assistant|system)\s*:", re.IGNORECASE | re.MULTILINE)
_REFUSAL = re.compile(
    r"could not find anything in your documents|"
    r"\b(?:documents?|sources?|context|text|passages?)\b[^.]{0,60}?\b(?:do(?:es)?\s*n[o']t|never|fails? to)\s+"
    r"(?:say|cover|contain|mention|provide|include|answer|address|specify|state|give)", re.IGNORECASE)


def passage(answer: str) -> str:
    """The answer's own words: a quote without its "Quoted from ..." line and `>` marks."""
    return re.sub(r"^>\s?", "", _QUOTE_HEADER.sub("", answer.strip()), flags=re.MULTILINE)


def share_in(words: set[str], pool: set[str]) -> float:
    return len(words & pool) / len(words) if words else 0.0


def from_section(source_text: str, gold: str) -> bool:
    """Whether a source chunk comes from the gold answer's section (a chunk may hold the start of the
    next question, or the gold answer may be longer than a chunk: either way most words match)."""
    source_words, gold_words = content_words(source_text), content_words(gold)
    return share_in(source_words, gold_words) >= SECTION_SHARE or share_in(gold_words, source_words) >= SECTION_SHARE


def is_refusal(answer: str, kind: str | None) -> bool:
    return kind == "no_context" or bool(_REFUSAL.search(answer))


def is_useful(answer: str, kind: str | None, gold: str, cited_texts: Sequence[str]) -> bool:
    words = content_words(passage(answer))
    return (not is_refusal(answer, kind) and len(words) >= 2 and share_in(words, content_words(gold)) >= USEFUL_SHARE
            and any(from_section(text, gold) for text in cited_texts))


def facts(answer: str) -> list[str]:
    """The exact facts an answer writes (a quote's "Quoted from ..." line left out)."""
    return exact_facts(passage(answer))


def copies_exactly(answer: str, given: str) -> bool:
    """Every fact of the answer appears character for character in `given` (its sources, the question)."""
    return not invented_facts(passage(answer), given)


def echoes_markup(answer: str) -> bool:
    return bool(_ECHO.search(answer))


def percentile(values: Sequence[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")
