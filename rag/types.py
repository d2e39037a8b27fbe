"""Plain data passed between the ingestion stages."""
from __future__ import annotations

from dataclasses import dataclass, field

DOCUMENT_TYPES = ("pdf", "docx", "html", "md", "csv", "txt", "pptx", "xlsx", "epub", "eml")


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
