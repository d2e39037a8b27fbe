"""DOCX, HTML and Markdown through unstructured (titles start sections, tables stay tables); CSV
and plain text read directly."""
from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ingest.loaders.archive import check_archive
from ingest.loaders.common import LoaderError, Progress, decode_text, from_elements, no_progress
from ingest.spacy_model import skip_narrative_text_check, use_packaged_spacy_model
from ingest.types import ParsedDocument, Section

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
    """Sections of an HTML text (also used for EPUB chapters and HTML mail), navigation left out."""
    use_packaged_spacy_model()
    skip_narrative_text_check()
    from unstructured.partition.html import partition_html

    return from_elements(partition_html(text=without_navigation(html)))


def without_navigation(html: str) -> str:
    """The page less what only navigates: <nav> and role="navigation" elements, the page's own
    <header> and <footer> (not an article's), and link lists - lists (ul, ol, dl) of LINK_LIST_ITEMS
    or more items that are each nothing but links (a menu; a contents list of anchors, as DocBook,
    Texinfo and Sphinx write them). unstructured keeps
    a link list as text, where it holds the words of many questions and the answer to none
    (answers/evidence.py recognises the other kinds of contents list). Unparsable HTML is left as it is."""
    from lxml import etree
    from lxml import html as lxml_html

    try:
        parser = lxml_html.HTMLParser(encoding="utf-8", no_network=True, huge_tree=False)
        root = lxml_html.fromstring(html.encode("utf-8"), parser=parser)  # bytes: an <?xml?> line is fine
    except (etree.ParserError, ValueError):
        return html
    doomed = root.xpath('//nav | //*[@role="navigation"] | //header[not(ancestor::article)]'
                        ' | //footer[not(ancestor::article)]')
    doomed += [element for element in root.xpath("//ul | //ol | //dl") if _link_list(element)]
    if not doomed:
        return html
    for element in doomed:
        if element.getparent() is not None:
            element.drop_tree()
    return str(etree.tostring(root, encoding="unicode", method="html"))


LINK_LIST_ITEMS = 3


def _link_list(element: Any) -> bool:
    items = element.findall("li") + element.findall("dt") + element.findall("dd")
    return len(items) >= LINK_LIST_ITEMS and all(_only_a_link(item) for item in items)


def _only_a_link(item: Any) -> bool:
    links = " ".join(link.text_content() for link in item.iter("a"))
    return bool(links.split()) and " ".join(item.text_content().split()) == " ".join(links.split())


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
