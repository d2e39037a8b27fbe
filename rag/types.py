"""Plain data the stores keep: chunks and a version change."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Chunk:
    text: str
    index: int
    tokens: int
    page: int | None = None
    section: str | None = None
    row: int | None = None


@dataclass(frozen=True)
class VersionChange:
    """What a change of a document's live version asks of the vector store: version ids whose
    chunks come into the live collection, and those whose chunks go to the archive."""

    to_live: list[str] = field(default_factory=list)
    to_archive: list[str] = field(default_factory=list)
