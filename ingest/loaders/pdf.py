"""PDF: the text layer (pypdf or pdfium, whichever keeps the spaces), OCR for pages without one,
and ruled tables as whole rows (pdfplumber)."""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest.loaders.common import LoaderError, Progress, clean, no_progress
from ingest.loaders.tables import table_from_cells, table_sections
from ingest.types import ParsedDocument, Section

if TYPE_CHECKING:
    from pypdf import PdfReader

log = logging.getLogger(__name__)
logging.getLogger("pypdf").setLevel(logging.ERROR)
logging.getLogger("pdfminer").setLevel(logging.ERROR)

# A page whose letters sit mostly in "words" this long has lost its spaces (pypdf on many TeX PDFs).
GLUED_WORD_LETTERS = 18
GLUED_PAGE_SHARE = 0.05
PYPDF_PROBE_PAGES = 5
# A page with less text than this that shows an image is a scan: it is read by OCR.
OCR_MIN_CHARS = 20
# Tables are looked for (pdfplumber, ruled tables) only on pages with at least this many drawn
# lines or boxes: pdfplumber reads a page ~50x slower than pdfium, and finds no table without them.
TABLE_MIN_PATHS = 6
# pdfplumber takes ~0.15 s a page with drawings (Debian's manual: 220 of 261 pages, 37 s in all).
# Tables are looked for on at most this many such pages of one PDF, in page order, so that a long
# PDF full of drawings stays within PARSE_TIMEOUT_S. The rest keep their plain text and are counted
# in the document's `table_pages_skipped`. A count of pages, not a clock: every machine indexes the
# same PDF into the same chunks.
TABLE_PAGES = 300
INSET = 2.0
# Running headers and footers ("Harbour notes, page 3", a book title, "Page 3 of 40"): a line among
# the first or last RUNNING_EDGE_LINES of a page, that (digits aside) is at that edge of at least
# RUNNING_SHARE of the pages (two at least), is navigation, not evidence: it is left out of the text.
RUNNING_EDGE_LINES = 2
RUNNING_SHARE = 0.6


def load_pdf(path: Path, progress: Progress = no_progress) -> ParsedDocument:
    """Every page's text; see the module docstring. Page numbers are kept for citations."""
    import pypdf
    import pypdfium2

    try:
        reader = pypdf.PdfReader(str(path))
        if reader.is_encrypted and reader.decrypt("") == 0:
            raise LoaderError("The PDF is password-protected")
        document = pypdfium2.PdfDocument(str(path))
    except (pypdf.errors.PyPdfError, pypdfium2.PdfiumError) as exc:
        raise LoaderError(f"The PDF could not be read: {exc}") from exc
    try:
        pages = _text_pages(reader, document)
        scanned = [index for index, (_, text) in enumerate(pages)
                   if len(text.strip()) < OCR_MIN_CHARS and _has_image(document[index])]
        for done, index in enumerate(scanned):
            progress(done, len(scanned))
            pages[index] = ("ocr", _ocr_page(document[index]))
        ruled = [index for index in range(len(pages)) if index not in scanned and _paths(document[index]) >= TABLE_MIN_PATHS]
        searched, skipped = ruled[:TABLE_PAGES], ruled[TABLE_PAGES:]
        tables = _tables(path, document, searched)
        if skipped:
            log.warning("%s: no tables looked for on %d pages past the first %d with drawings (TABLE_PAGES)",
                        path.name, len(skipped), TABLE_PAGES)
    except pypdf.errors.PyPdfError as exc:
        raise LoaderError(f"The PDF could not be read: {exc}") from exc
    finally:
        document.close()
    extractors: dict[str, int] = {"pypdf": 0, "pdfium": 0}
    sections: list[Section] = []
    running = running_lines([text for _, text in pages])
    for number, (extractor, text) in enumerate(pages, start=1):
        extractors[extractor] = extractors.get(extractor, 0) + 1
        text, page_tables = tables.get(number - 1, (text, []))
        text = without_running_lines(text, running)
        if text.strip():
            sections.append(Section(text=clean(text), page=number))
        sections += page_tables
    return ParsedDocument(sections, pages=len(pages), extractors=extractors, ocr_pages=len(scanned),
                          table_pages_skipped=len(skipped))


def _edge_lines(text: str) -> list[str]:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) <= 2 * RUNNING_EDGE_LINES:
        return lines
    return lines[:RUNNING_EDGE_LINES] + lines[-RUNNING_EDGE_LINES:]


def _running_form(line: str) -> str:
    """A line with its numbers (page numbers, dates) and spacing made alike."""
    return re.sub(r"\s+", " ", re.sub(r"\d+", "#", line.strip().lower()))


def running_lines(pages: list[str]) -> set[str]:
    """The running forms of the lines that head or foot most pages (see RUNNING_SHARE)."""
    counts: dict[str, int] = {}
    for text in pages:
        for form in {_running_form(line) for line in _edge_lines(text)}:
            counts[form] = counts.get(form, 0) + 1
    least = max(2, RUNNING_SHARE * len(pages))
    return {form for form, count in counts.items() if count >= least}


def without_running_lines(text: str, running: set[str]) -> str:
    """The page's text less its running header and footer lines (only at its edges)."""
    if not running:
        return text
    lines = text.splitlines()
    edges = [index for index, line in enumerate(lines) if line.strip()]
    edges = edges[:RUNNING_EDGE_LINES] + edges[-RUNNING_EDGE_LINES:]
    drop = {index for index in edges if _running_form(lines[index]) in running}
    return "\n".join(line for index, line in enumerate(lines) if index not in drop)


def _text_pages(reader: PdfReader, document: Any) -> list[tuple[str, str]]:
    """(extractor, text) per page: pypdf, unless it loses the spaces between words on this PDF.

    pypdf is probed on the pages with the most text (front matter says little); when its words come
    out glued where pdfium's do not (true of many TeX-made PDFs, e.g. Debian's debian-reference),
    pdfium reads the whole file. Otherwise pypdf reads every page, and any single glued page is
    still re-read by pdfium."""
    pdfium_pages = [document[index].get_textpage().get_text_range() for index in range(len(document))]
    use_pypdf = _pypdf_keeps_spaces(reader, pdfium_pages)
    return [_best_page(reader, index, pdfium_pages, use_pypdf) for index in range(len(pdfium_pages))]


def _pypdf_keeps_spaces(reader: PdfReader, pdfium_pages: list[str]) -> bool:
    by_length = sorted(range(len(pdfium_pages)), key=lambda i: len(pdfium_pages[i]), reverse=True)
    probed = [i for i in by_length if pdfium_pages[i].strip()][:PYPDF_PROBE_PAGES]
    glued = sum(
        glued_share(reader.pages[i].extract_text() or "") > GLUED_PAGE_SHARE >= glued_share(pdfium_pages[i])
        for i in probed
    )
    return glued * 2 <= len(probed)


def _best_page(reader: PdfReader, index: int, pdfium_pages: list[str], use_pypdf: bool) -> tuple[str, str]:
    if not use_pypdf:
        return "pdfium", pdfium_pages[index]
    text = reader.pages[index].extract_text() or ""
    if glued_share(text) > GLUED_PAGE_SHARE and glued_share(pdfium_pages[index]) < glued_share(text):
        return "pdfium", pdfium_pages[index]
    return "pypdf", text


def glued_share(text: str) -> float:
    """Share of letters that sit in implausibly long words: high when spaces went missing."""
    words = re.findall(r"[A-Za-z]+", text)
    letters = sum(len(word) for word in words)
    glued = sum(len(word) for word in words if len(word) >= GLUED_WORD_LETTERS)
    return glued / letters if letters else 0.0


def _has_image(page: Any) -> bool:
    import pypdfium2.raw as pdfium_c

    return next(iter(page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=4)), None) is not None


def _paths(page: Any) -> int:
    import pypdfium2.raw as pdfium_c

    count = 0
    for _ in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_PATH], max_depth=2):
        count += 1
        if count >= TABLE_MIN_PATHS:
            break
    return count


def _ocr_page(page: Any) -> str:
    from ingest.loaders.ocr import OCR_DPI, read_image

    bitmap = page.render(scale=OCR_DPI / 72, grayscale=True)
    return read_image(bitmap.to_numpy())


def _tables(path: Path, document: Any, page_indexes: list[int]) -> dict[int, tuple[str, list[Section]]]:
    """page index -> (the page's text outside its tables, the tables' sections), for pages with
    ruled tables. pdfplumber finds the tables' cells; pdfium reads the text in them and around
    them, because pdfplumber's own text glues words on the PDFs where pypdf does."""
    if not page_indexes:
        return {}
    import pdfplumber

    found: dict[int, tuple[str, list[Section]]] = {}
    with pdfplumber.open(str(path)) as pdf:
        for index in page_indexes:
            geometry = pdf.pages[index]
            try:
                located = geometry.find_tables()
            except Exception:  # noqa: BLE001 - pdfminer's many errors: the page keeps its plain text
                log.warning("table detection failed on page %d of %s", index + 1, path.name, exc_info=True)
                continue
            if not located:
                continue
            read = _Region(document[index], geometry.width, geometry.height)
            tables = [(table.bbox, table_from_cells([[read(cell) if cell else "" for cell in row.cells]
                                                     for row in table.rows])) for table in located]
            boxes = sorted(bbox for bbox, table in tables if table is not None)
            if boxes:
                sections = [section for _bbox, table in tables if table is not None
                            for section in table_sections(table, page=index + 1)]
                found[index] = (read.outside(boxes), sections)
    return found


class _Region:
    """pdfium's text within a box given in pdfplumber's coordinates (top-down, in points)."""

    def __init__(self, page: Any, width: float, height: float) -> None:
        self._text = page.get_textpage()
        self._width, self._height = width, height

    def __call__(self, box: tuple[float, float, float, float]) -> str:
        """pdfium takes every character whose box touches the region, so the region is drawn in by
        INSET points: the descenders of the line above a table are not read into its first row."""
        x0, top, x1, bottom = box
        return str(self._text.get_text_bounded(left=x0 + INSET, bottom=self._height - bottom + INSET,
                                               right=x1 - INSET, top=self._height - top - INSET))

    def outside(self, boxes: list[tuple[float, float, float, float]]) -> str:
        """The text in the full-width bands above, between and below the tables."""
        bands, top = [], 0.0
        for _x0, box_top, _x1, box_bottom in sorted(boxes, key=lambda box: box[1]):
            if box_top > top:
                bands.append(self((0, top, self._width, box_top)))
            top = max(top, box_bottom)
        bands.append(self((0, top, self._width, self._height)))
        return "\n".join(band for band in bands if band.strip())
