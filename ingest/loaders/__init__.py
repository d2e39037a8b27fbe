"""One loader per format, and the registry by type. Loaders run inside the parsing sandbox; each
takes the file and a progress callback (pages done, pages in all) for long parses."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ingest.loaders.common import LoaderError, Progress, decode_text, from_elements, no_progress
from ingest.loaders.doc import load_doc
from ingest.loaders.epub import load_epub
from ingest.loaders.formats import load_csv, load_docx, load_html, load_md, load_txt
from ingest.loaders.mail import load_eml
from ingest.loaders.office import load_pptx, load_xlsx
from ingest.loaders.pdf import glued_share, load_pdf
from ingest.types import ParsedDocument

LOADERS: dict[str, Callable[[Path, Progress], ParsedDocument]] = {
    "pdf": load_pdf,
    "docx": load_docx,
    "doc": load_doc,
    "html": load_html,
    "md": load_md,
    "csv": load_csv,
    "txt": load_txt,
    "pptx": load_pptx,
    "xlsx": load_xlsx,
    "epub": load_epub,
    "eml": load_eml,
}

__all__ = ["LOADERS", "LoaderError", "Progress", "decode_text", "from_elements", "glued_share", "load_csv",
           "load_doc", "load_docx", "load_eml", "load_epub", "load_html", "load_md", "load_pdf", "load_pptx", "load_txt",
           "load_xlsx", "no_progress"]
