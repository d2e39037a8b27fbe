"""Decide a file's type from its content and its extension together; disagreement is refused."""
from __future__ import annotations

import csv
import re
import zipfile
from pathlib import Path

from charset_normalizer import from_bytes

from rag.errors import UnsupportedFileType

EXTENSIONS = {
    ".pdf": "pdf",
    ".docx": "docx",
    ".doc": "doc",
    ".html": "html",
    ".htm": "html",
    ".md": "md",
    ".markdown": "md",
    ".csv": "csv",
    ".txt": "txt",
    ".text": "txt",
    ".pptx": "pptx",
    ".xlsx": "xlsx",
    ".epub": "epub",
    ".eml": "eml",
}
# Zip-based formats by a member only they have (read from the zip directory, nothing unpacked).
_ZIP_MARKERS = {"word/document.xml": "docx", "ppt/presentation.xml": "pptx", "xl/workbook.xml": "xlsx",
                "META-INF/container.xml": "epub"}
# A mail starts with header lines; these are the ones every mail program writes.
_MAIL_HEADER = re.compile(rb"^(from|to|subject|date|message-id|received|mime-version|return-path|delivered-to):",
                          re.I | re.M)
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # the OLE2 (Compound File) header of legacy Office files
SNIFF_BYTES = 64 * 1024
_HTML_MARKERS = re.compile(rb"<!doctype\s+html|<html[\s>]|<head[\s>]|<body[\s>]|<(p|div|h[1-6]|table|ul|article)[\s>]", re.I)


def detect_type(path: Path, filename: str) -> str:
    """The document type (one of `EXTENSIONS`' values) or UnsupportedFileType saying why."""
    extension = Path(filename).suffix.lower()
    claimed = EXTENSIONS.get(extension)
    if claimed is None:
        supported = ", ".join(sorted(EXTENSIONS))
        raise UnsupportedFileType(f"Unsupported file type {extension or '(no extension)'!r}; supported: {supported}",
                                  {"filename": filename})
    head = path.open("rb").read(SNIFF_BYTES)
    found = _content_type(path, head)
    if found == "text" and claimed in ("html", "md", "csv", "txt", "eml"):
        found = _text_kind(head, claimed)
    if found != claimed:
        raise UnsupportedFileType(
            f"The content of {filename!r} is {_describe(found)}, which does not match its {extension} extension",
            {"filename": filename, "extension": extension, "content": found},
        )
    return claimed


def _content_type(path: Path, head: bytes) -> str:
    if b"%PDF-" in head[:1024]:
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        return _zip_kind(path)
    if head.startswith(OLE_MAGIC):
        return _ole_kind(path)
    if _is_text(head):
        return "text"
    return "binary"


def _zip_kind(path: Path) -> str:
    """Reads only the zip directory: nothing is decompressed here."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return "zip"
    return next((kind for marker, kind in _ZIP_MARKERS.items() if marker in names), "zip")


def _ole_kind(path: Path) -> str:
    """A Word 97-2003 file is an OLE2 container with a WordDocument stream (Excel and PowerPoint
    files are containers too); only the container's directory is read."""
    import olefile

    try:
        with olefile.OleFileIO(str(path)) as container:
            return "doc" if container.exists("WordDocument") else "ole"
    except Exception:  # noqa: BLE001 - a damaged container: the loader says what is wrong with it
        return "doc"


def _is_text(head: bytes) -> bool:
    if b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return False
    best = from_bytes(head).best()
    return best is not None


def _text_kind(head: bytes, claimed: str) -> str:
    """Among text formats the extension decides, except that HTML must look like HTML and CSV like CSV."""
    if claimed == "html":
        return "html" if _HTML_MARKERS.search(head) else "plain text"
    if claimed == "csv":
        return "csv" if _looks_like_csv(head) else "plain text"
    if claimed == "eml":
        return "eml" if _looks_like_mail(head) else "plain text"
    return claimed


def _looks_like_mail(head: bytes) -> bool:
    """At least two known header lines before the first empty line."""
    headers = re.split(rb"\r?\n\r?\n", head, maxsplit=1)[0]
    return len(_MAIL_HEADER.findall(headers)) >= 2


def _looks_like_csv(head: bytes) -> bool:
    sample = head.decode("utf-8", errors="replace")
    lines = [line for line in sample.splitlines() if line.strip()][:20]
    if not lines:
        return False
    try:
        dialect = csv.Sniffer().sniff("\n".join(lines), delimiters=",;\t|")
    except csv.Error:
        return len(lines) >= 1 and "," in lines[0]
    widths = {len(row) for row in csv.reader(lines, dialect)}
    return max(widths) >= 2


def _describe(kind: str) -> str:
    return {"zip": "a zip archive", "binary": "binary data", "text": "plain text",
            "ole": "a legacy Office file other than Word"}.get(kind, kind.upper() if len(kind) <= 4 else kind)
