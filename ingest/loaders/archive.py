"""Zip-based formats (DOCX, PPTX, XLSX, EPUB) are opened only after their directory passes these
checks, and their XML is parsed without entities, DTDs or network: a zip bomb or an XXE file fails
with a clear message. The sandbox's memory cap still stops a bomb whose headers lie about sizes."""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from ingest.loaders.common import LoaderError

MAX_MEMBERS = 10_000
MAX_UNPACKED_BYTES = 1024 * 1024 * 1024
MAX_RATIO = 200  # unpacked / packed size of the archive as a whole


def check_archive(path: Path) -> None:
    """Refuse an archive whose directory promises a bomb: too many members, too many bytes
    unpacked, or a compression ratio no document has. Reads only the directory."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise LoaderError(f"The file is not a readable zip archive ({exc})") from exc
    unpacked = sum(member.file_size for member in members)
    packed = max(sum(member.compress_size for member in members), 1)
    if len(members) > MAX_MEMBERS:
        raise LoaderError(f"The archive holds {len(members)} files, more than the {MAX_MEMBERS} allowed")
    if unpacked > MAX_UNPACKED_BYTES or unpacked / packed > MAX_RATIO and unpacked > 64 * 1024 * 1024:
        raise LoaderError(f"The archive would unpack to {unpacked // (1024 * 1024)} MB "
                          f"({unpacked / packed:.0f} times its size): refused as a zip bomb")


def read_member(archive: zipfile.ZipFile, name: str, limit: int = 256 * 1024 * 1024) -> bytes:
    """A member's bytes, reading at most `limit` whatever its header claims."""
    try:
        with archive.open(name) as member:
            data = member.read(limit + 1)
    except KeyError as exc:
        raise LoaderError(f"The archive has no {name}") from exc
    if len(data) > limit:
        raise LoaderError(f"{name} unpacks to more than {limit // (1024 * 1024)} MB: refused as a zip bomb")
    return data


def parse_xml(data: bytes) -> Any:
    """XML without entity expansion, DTD loading or network access (lxml)."""
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, load_dtd=False, no_network=True, huge_tree=False)
    try:
        return etree.fromstring(data, parser=parser)
    except etree.XMLSyntaxError as exc:
        raise LoaderError(f"Broken XML in the archive ({exc})") from exc
