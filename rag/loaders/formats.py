"""DOCX, HTML and Markdown through unstructured (titles start sections, tables stay tables); CSV
and plain text read directly."""
from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from rag.loaders.archive import check_archive
from rag.loaders.common import LoaderError, Progress, decode_text, from_elements, no_progress
from rag.spacy_model import skip_narrative_text_check, use_packaged_spacy_model
from rag.types import ParsedDocument, Section

os.environ.setdefault("UNSTRUCTURED_DISABLE_NOTICE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")


def load_docx(path: Path, progress: Progress = no_progress) -> ParsedDocument:
    check_archive(path)
    use_packaged_spacy_model()
    from unstructured.partition.docx import partition_docx

    return ParsedDocument(from_elements(partition_docx(filename=str(path))))


def load_html(path: Path, progress: Progress = no_progress) -> ParsedDocument:
    return ParsedDocument(html_sections(decode_text(path.read_bytes())))


def html_sections(html: str) -> list[Section]:
    """Sections of an HTML text (also used for EPUB chapters and HTML mail)."""
    use_packaged_spacy_model()
    skip_narrative_text_check()
    from unstructured.partition.html import partition_html

    return from_elements(partition_html(text=html))


def load_md(path: Path, progress: Progress = no_progress) -> ParsedDocument:
    use_packaged_spacy_model()
    skip_narrative_text_check()
    from unstructured.partition.md import partition_md

    return ParsedDocument(from_elements(partition_md(text=decode_text(path.read_bytes()))))


def load_csv(path: Path, progress: Progress = no_progress) -> ParsedDocument:
    """One section per record, as `header: value` lines, with its 1-based row number."""
    text = decode_text(path.read_bytes())
    try:
        dialect = csv.Sniffer().sniff(text[:64 * 1024], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    rows = csv.reader(io.StringIO(text), dialect)
    header = [name.strip() or f"column {i + 1}" for i, name in enumerate(next(rows, []))]
    if not header:
        raise LoaderError("The CSV file has no header row")
    return ParsedDocument(record_sections(header, enumerate(rows, start=1)))


def record_sections(header: list[str], rows: Iterable[tuple[int, Sequence[object]]],
                    sheet: str | None = None) -> list[Section]:
    """Records (number, cells) under `header` -> one section each of `header: value` lines (CSV rows,
    spreadsheet rows); empty cells are left out, empty records skipped."""
    sections = []
    for number, row in rows:
        pairs = [f"{name}: {value}" for name, value in zip(header, (_text(cell) for cell in row), strict=False) if value]
        if pairs:
            sections.append(Section(text="\n".join(pairs), row=number, section=sheet))
    return sections


def _text(cell: object) -> str:
    return "" if cell is None else str(cell).strip()


def load_txt(path: Path, progress: Progress = no_progress) -> ParsedDocument:
    text = decode_text(path.read_bytes())
    return ParsedDocument([Section(text=text)] if text.strip() else [])
