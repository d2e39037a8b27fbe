"""Which retrieved chunks are evidence: a table of contents or a list of headings is navigation.

A chapter's own contents list ("2.1.3. Life with eternal upgrades", "9.10 List of ps command
styles . . . . 144") holds the words of many questions and the answer to none: searched, it often
ranks first, and given to the model as a source, the model lists headings instead of answering.
Such a chunk is recognised by its text - most of its lines are numbered headings without a
sentence's end, or entries with dot leaders and a page number - and is not given to the model
as evidence; it is still found by /search (a way to the section it names). The chunk's text
decides, so documents indexed before this rule existed are treated the same. (Running page
headers and footers are removed from a PDF's text when it is read: ingest/loaders/pdf.py.)
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol, TypeVar

NAVIGATION_SHARE = 0.6  # of a chunk's lines
NAVIGATION_MIN_LINES = 4
NAVIGATION_SPARE = 3  # chunks searched beyond top_k, so that navigation left out leaves top_k
_LEADER = re.compile(r"(?:\s?\.){3,}\s*(?:\d+|[ivxlc]+)\s*$", re.IGNORECASE)
# "2.1.3. Life with eternal upgrades", "A.2 Tips": a section number with a dot inside (a plain
# "1." list of steps is not navigation)
_NUMBERED = re.compile(r"^(?:\d+|[A-Z])(?:\.\d+)+\.?\s+\S.{0,150}$")


class HasText(Protocol):
    @property
    def text(self) -> str: ...


Chunk = TypeVar("Chunk", bound=HasText)


def _entry(line: str) -> bool:
    return bool(_LEADER.search(line)) or (bool(_NUMBERED.match(line)) and not line.endswith((".", "?", "!", ":", ";")))


def is_navigation(text: str) -> bool:
    """Whether a chunk is a contents list or a list of headings (see the module docstring)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    entries = sum(1 for line in lines if _entry(line))
    return len(lines) >= NAVIGATION_MIN_LINES and entries >= NAVIGATION_SHARE * len(lines)


def evidence(chunks: Sequence[Chunk], k: int) -> list[Chunk]:
    """The first `k` chunks that are not navigation, in their order."""
    return [chunk for chunk in chunks if not is_navigation(chunk.text)][:k]
