"""What every loader shares: the error users see, text decoding, progress, and unstructured elements
turned into sections (tables kept as tables)."""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from charset_normalizer import from_bytes

from ingest.loaders.tables import table_from_html, table_sections
from ingest.types import Section

# (pages done, pages in all) while a long parse (OCR) runs; the sandbox passes it on to the progress bar.
Progress = Callable[[int, int], None]


def no_progress(_done: int, _total: int) -> None:
    return None


class LoaderError(Exception):
    """The file could not be read as its type; the message is shown to the user."""


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


def clean(text: str) -> str:
    return re.sub(r"[ \t]+\n", "\n", text).strip()


def section_name(text: str) -> str | None:
    """A title, subject or chapter name as a section's name: white space collapsed, at most 200
    characters; None when nothing is left."""
    return " ".join(text.split())[:200] or None


def from_elements(elements: Iterable[object]) -> list[Section]:
    """unstructured elements -> sections; each Title starts a section named after it, and each Table
    becomes sections of whole rows under its header line (`ingest.loaders.tables`)."""
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
        metadata = getattr(element, "metadata", None)
        element_page = getattr(metadata, "page_number", None)
        category = getattr(element, "category", "")
        table = table_from_html(getattr(metadata, "text_as_html", None) or "") if category == "Table" else None
        if category == "Title" or table is not None or element_page != page:
            flush()
        page = element_page
        if category == "Title":
            title = text[:200]
        if table is not None:
            sections.extend(table_sections(table, page=page, section=title))
        else:
            buffer.append(text)
    flush()
    return sections
