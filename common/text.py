"""Sentences of a text, as the grounding check, the quotes, the prompt's passages and the answer's
sentence limit all see them."""
from __future__ import annotations

import re

# Words that carry no subject: left out of keyword queries (each costs a pass over a long posting list
# and BM25 gives it almost no weight), of the content words the grounding check compares, and of a
# conversation's top keywords. One list, so "what a question is about" means the same everywhere.
STOPWORDS = frozenset("""a about above after again against all also am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further get had has have
having he her here hers herself him himself his how i if in into is it its itself just many may me more
most much my myself no nor not now of off on once one only or other our ours ourselves out over own
please same she should so some such tell than that the their theirs them themselves then there these
they this those through to too two under until up us use used using very was we were what when where
which while who whom why will with would you your yours yourself yourselves""".split())

_SENTENCE = re.compile(r"(?:[^.!?\n]|[.!?]+(?=[^\s.!?]))+(?:[.!?]+|\n|$)")  # "10.4.11" and "e.g." stay whole
_WORDS = re.compile(r"[^\W\d_]{2}")  # a sentence that counts holds a word ("1." of a list does not)
_FENCE = "```"


def sentences_of(text: str) -> list[tuple[str, int, int]]:
    """The sentences of a text with their offsets (ends at . ! ? or a line break)."""
    found = []
    for match in _SENTENCE.finditer(text):
        stripped = match.group().strip()
        if stripped:
            start = match.start() + match.group().index(stripped[0])
            found.append((stripped, start, start + len(stripped)))
    return found


def in_code_block(text: str, offset: int) -> bool:
    """Whether `offset` of `text` lies inside a ``` code block (an unclosed one too)."""
    return text.count(_FENCE, 0, offset) % 2 == 1


def sentence_limit_cut(text: str, limit: int) -> int | None:
    """Where a text's sentence number `limit` ends, once sentence `limit` + 1 has begun, or None
    while it holds no more than `limit` (0: no limit). Only sentences with a
    word count, and lines of a ``` code block are part of the sentence before it: a command or a
    numbered list's "1." is not a sentence of its own, and no cut falls inside code."""
    if limit <= 0:
        return None
    counted = 0
    for sentence, start, _ in sentences_of(text):
        if in_code_block(text, start) or not _WORDS.search(sentence):
            continue
        counted += 1
        if counted > limit:
            return len(text[:start].rstrip())
    return None
