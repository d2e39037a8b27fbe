"""One loader per format, and the registry by type. Loaders run inside the parsing sandbox."""
from __future__ import annotations

import csv
import io
import logging
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from charset_normalizer import from_bytes

from rag.spacy_model import skip_narrative_text_check, use_packaged_spacy_model
from rag.types import ParsedDocument, Section

if TYPE_CHECKING:
    from pypdf import PdfReader

os.environ.setdefault("UNSTRUCTURED_DISABLE_NOTICE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
logging.getLogger("pypdf").setLevel(logging.ERROR)

# A page whose letters sit mostly in "words" this long has lost its spaces (pypdf on many TeX PDFs).
GLUED_WORD_LETTERS = 18
GLUED_PAGE_SHARE = 0.05


class LoaderError(Exception):
    """The file could not be read as its type; the message is shown to the user."""


def load_pdf(path: Path) -> ParsedDocument:
    """pypdf, unless it loses the spaces between words on this PDF: then pdfium, page by page.

    pypdf is probed on the pages with the most text; when its words come out glued where pdfium's
    do not (true of many TeX-made PDFs, e.g. Debian's debian-reference), pdfium reads the whole
    file. Otherwise pypdf reads every page, and any single glued page is still re-read by pdfium.
    """
    import pypdf

    try:
        reader = pypdf.PdfReader(str(path))
        if reader.is_encrypted and reader.decrypt("") == 0:
            raise LoaderError("The PDF is password-protected")
        pdfium_pages = _pdfium_pages(path)
        use_pypdf = _pypdf_keeps_spaces(reader, pdfium_pages)
        pages = [_best_page(reader, index, pdfium_pages, use_pypdf) for index in range(len(reader.pages))]
    except pypdf.errors.PyPdfError as exc:
        raise LoaderError(f"The PDF could not be read: {exc}") from exc
    extractors = {"pypdf": 0, "pdfium": 0}
    sections = []
    for number, (extractor, text) in enumerate(pages, start=1):
        extractors[extractor] += 1
        if text.strip():
            sections.append(Section(text=_clean(text), page=number))
    return ParsedDocument(sections, pages=len(pages), extractors=extractors)


PYPDF_PROBE_PAGES = 5


def _pypdf_keeps_spaces(reader: PdfReader, pdfium_pages: list[str]) -> bool:
    """Probe pypdf on the pages with the most text (front matter says little)."""
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


def _pdfium_pages(path: Path) -> list[str]:
    import pypdfium2

    document = pypdfium2.PdfDocument(str(path))
    try:
        return [document[index].get_textpage().get_text_range() for index in range(len(document))]
    finally:
        document.close()


def glued_share(text: str) -> float:
    """Share of letters that sit in implausibly long words: high when spaces went missing."""
    words = re.findall(r"[A-Za-z]+", text)
    letters = sum(len(word) for word in words)
    glued = sum(len(word) for word in words if len(word) >= GLUED_WORD_LETTERS)
    return glued / letters if letters else 0.0


def load_docx(path: Path) -> ParsedDocument:
    use_packaged_spacy_model()
    from unstructured.partition.docx import partition_docx

    return _from_elements(partition_docx(filename=str(path)))


def load_html(path: Path) -> ParsedDocument:
    use_packaged_spacy_model()
    skip_narrative_text_check()
    from unstructured.partition.html import partition_html

    return _from_elements(partition_html(text=decode_text(path.read_bytes())))


def load_md(path: Path) -> ParsedDocument:
    use_packaged_spacy_model()
    skip_narrative_text_check()
    from unstructured.partition.md import partition_md

    return _from_elements(partition_md(text=decode_text(path.read_bytes())))


def load_csv(path: Path) -> ParsedDocument:
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
    sections = []
    for number, row in enumerate(rows, start=1):
        pairs = [f"{name}: {value.strip()}" for name, value in zip(header, row, strict=False) if value.strip()]
        if pairs:
            sections.append(Section(text="\n".join(pairs), row=number))
    return ParsedDocument(sections)


def load_txt(path: Path) -> ParsedDocument:
    text = decode_text(path.read_bytes())
    return ParsedDocument([Section(text=text)] if text.strip() else [])


def decode_text(raw: bytes) -> str:
    """Bytes to text in their detected encoding (UTF-8 first, as most files are)."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    best = from_bytes(raw).best()
    if best is None:
        raise LoaderError("The file is not text in any encoding we recognise")
    return str(best)


def _from_elements(elements: Iterable[object]) -> ParsedDocument:
    """unstructured elements -> sections; each Title starts a section named after it."""
    sections: list[Section] = []
    title: str | None = None
    buffer: list[str] = []
    page: int | None = None

    def flush() -> None:
        if buffer:
            sections.append(Section(text="\n\n".join(buffer), page=page, section=title))
            buffer.clear()

    for element in elements:
        text = (getattr(element, "text", "") or "").strip()
        if not text:
            continue
        element_page = getattr(getattr(element, "metadata", None), "page_number", None)
        if getattr(element, "category", "") == "Title":
            flush()
            title = text[:200]
        elif element_page != page:
            flush()
        page = element_page
        buffer.append(text)
    flush()
    return ParsedDocument(sections)


def _clean(text: str) -> str:
    return re.sub(r"[ \t]+\n", "\n", text).strip()


LOADERS: dict[str, Callable[[Path], ParsedDocument]] = {
    "pdf": load_pdf,
    "docx": load_docx,
    "html": load_html,
    "md": load_md,
    "csv": load_csv,
    "txt": load_txt,
}
