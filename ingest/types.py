"""Plain data passed between the reading stages: what a loader gives the chunker."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Section:
    """A run of text with one citation address: a PDF page or slide, a titled section, a CSV or sheet
    row. A table's section holds one row per line and its header line in `header`, which the chunker
    repeats at the top of each of its chunks."""

    text: str
    page: int | None = None
    section: str | None = None
    row: int | None = None
    header: str | None = None


@dataclass(frozen=True)
class ParsedDocument:
    sections: list[Section]
    pages: int | None = None
    extractors: dict[str, int] = field(default_factory=dict)  # e.g. PDF pages per text extractor
    ocr_pages: int = 0  # pages read by OCR (no text layer)
    table_pages_skipped: int = 0  # pages with drawings not searched for tables (past the PDF loader's cap)
