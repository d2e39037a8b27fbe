"""Sentences of a text, as the grounding check, the quotes, the prompt's passages and the answer's
sentence limit all see them."""
from __future__ import annotations

import re

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


def sentence_limit_cut(text: str, limit: int) -> int | None:
    """Where a text's sentence number `limit` ends, once sentence `limit` + 1 has begun, or None
    while it holds no more than `limit` (0: no limit). Only sentences with a
    word count, and lines of a ``` code block are part of the sentence before it: a command or a
    numbered list's "1." is not a sentence of its own, and no cut falls inside code."""
    if limit <= 0:
        return None
    counted = 0
    for sentence, start, _ in sentences_of(text):
        if text.count(_FENCE, 0, start) % 2 or not _WORDS.search(sentence):
            continue
        counted += 1
        if counted > limit:
            return len(text[:start].rstrip())
    return None
