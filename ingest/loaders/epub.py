"""EPUB: the chapters in reading order (the package's spine), each read as HTML; a chapter's
sections are named by its headings, or by the chapter's own title before the first heading.

Read here rather than through ebooklib, whose lxml parser expands entities: every XML part goes
through `parse_xml` and every member through `read_member`'s size cap."""
from __future__ import annotations

import posixpath
import re
import zipfile
from dataclasses import replace
from pathlib import Path
from urllib.parse import unquote

from ingest.loaders.archive import check_archive, parse_xml, read_member
from ingest.loaders.common import LoaderError, Progress, decode_text, no_progress, section_name
from ingest.loaders.formats import html_sections
from ingest.types import ParsedDocument, Section

_CONTAINER = "{urn:oasis:names:tc:opendocument:xmlns:container}"
_OPF = "{http://www.idpf.org/2007/opf}"
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>", re.I)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.I | re.S)
_CHAPTER_TYPES = ("application/xhtml+xml", "text/html")


def load_epub(path: Path, progress: Progress = no_progress) -> ParsedDocument:
    check_archive(path)
    try:
        with zipfile.ZipFile(path) as archive:
            chapters = _spine(archive)
            sections: list[Section] = []
            for number, name in enumerate(chapters, start=1):
                sections += _chapter_sections(decode_text(read_member(archive, name)), number)
    except zipfile.BadZipFile as exc:
        raise LoaderError(f"The e-book could not be read ({exc})") from exc
    return ParsedDocument(sections)


def _spine(archive: zipfile.ZipFile) -> list[str]:
    """The chapter files in reading order."""
    rootfile = parse_xml(read_member(archive, "META-INF/container.xml")).find(f".//{_CONTAINER}rootfile")
    if rootfile is None or not rootfile.get("full-path"):
        raise LoaderError("The e-book names no package document (META-INF/container.xml)")
    package_path = rootfile.get("full-path")
    package = parse_xml(read_member(archive, package_path))
    base = posixpath.dirname(package_path)
    manifest = {item.get("id"): item for item in package.iter(f"{_OPF}item")}
    chapters = []
    for reference in package.iter(f"{_OPF}itemref"):
        item = manifest.get(reference.get("idref"))
        if item is not None and item.get("media-type") in _CHAPTER_TYPES and item.get("href"):
            chapters.append(posixpath.normpath(posixpath.join(base, unquote(item.get("href")))))
    if not chapters:
        raise LoaderError("The e-book has no chapters in its spine")
    return chapters


def _chapter_sections(xhtml: str, number: int) -> list[Section]:
    html = _XML_DECLARATION.sub("", xhtml, count=1)
    found = _TITLE.search(html)
    title = (section_name(found.group(1)) if found else None) or f"Chapter {number}"
    return [section if section.section else replace(section, section=title) for section in html_sections(html)]
