"""PPTX (each slide a page, its title the section, speaker notes included) and XLSX (each row a
record of `header: value` lines, cited by sheet and row), through python-pptx and openpyxl."""
from __future__ import annotations

import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ingest.loaders.archive import check_archive
from ingest.loaders.common import LoaderError, Progress, no_progress, section_name
from ingest.loaders.formats import record_sections
from ingest.loaders.tables import table_from_cells, table_sections
from ingest.types import ParsedDocument, Section


def load_pptx(path: Path, progress: Progress = no_progress) -> ParsedDocument:
    check_archive(path)
    from pptx import Presentation
    from pptx.exc import PackageNotFoundError

    try:
        deck = Presentation(str(path))
    except (PackageNotFoundError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise LoaderError(f"The presentation could not be read ({exc})") from exc
    sections: list[Section] = []
    for number, slide in enumerate(deck.slides, start=1):
        sections += _slide_sections(slide, number)
    return ParsedDocument(sections, pages=len(deck.slides))


def _slide_sections(slide: Any, number: int) -> list[Section]:
    title_shape = slide.shapes.title
    title = section_name(title_shape.text_frame.text) if title_shape is not None else None
    texts: list[str] = []
    tables: list[Section] = []
    for shape in _flat(slide.shapes):
        if shape.has_table:
            table = table_from_cells([[cell.text for cell in row.cells] for row in shape.table.rows])
            tables += table_sections(table, page=number, section=title) if table else []
        elif shape.has_text_frame and shape.text_frame.text.strip():
            texts.append(shape.text_frame.text.strip())
    if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
        notes = slide.notes_slide.notes_text_frame.text.strip()
        if notes:
            texts.append(f"Speaker notes: {notes}")
    body = [Section(text="\n\n".join(texts), page=number, section=title)] if texts else []
    return body + tables


def _flat(shapes: Iterable[Any]) -> Iterator[Any]:
    """Shapes in slide order, the members of groups in place of the group."""
    for shape in shapes:
        if hasattr(shape, "shapes"):
            yield from _flat(shape.shapes)
        else:
            yield shape


def load_xlsx(path: Path, progress: Progress = no_progress) -> ParsedDocument:
    """Each sheet's first non-empty row is its header; every row below becomes one section of
    `header: value` lines, cited by the sheet's name and the row's number as the sheet shows it.
    Formulas give their last computed value."""
    check_archive(path)
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = load_workbook(str(path), read_only=True, data_only=True)
    except (InvalidFileException, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise LoaderError(f"The spreadsheet could not be read ({exc})") from exc
    try:
        sections: list[Section] = []
        for sheet in book.worksheets:
            sections += _sheet_sections(sheet)
        return ParsedDocument(sections)
    finally:
        book.close()


def _sheet_sections(sheet: Any) -> list[Section]:
    rows = ((number, row) for number, row in enumerate(sheet.iter_rows(values_only=True), start=1)
            if any(cell not in (None, "") for cell in row))
    first = next(rows, None)
    if first is None:
        return []
    header = [str(name).strip() if name not in (None, "") else f"column {index + 1}"
              for index, name in enumerate(first[1])]
    return record_sections(header, rows, sheet=sheet.title)
