"""The document service: accept an upload safely, deduplicate, queue it; list, read, wait, delete."""
from __future__ import annotations

import hashlib
import re
import shutil
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from rag.errors import DuplicateContent, EmptyDocument, LastVersion
from rag.models import STATUS_FAILED, STATUS_READY
from rag.repository import DocumentRepository, DocumentView, DuplicateDocument
from rag.sniff import detect_type
from rag.vector_store import VectorStore

COPY_BLOCK = 1024 * 1024
WAIT_POLL_S = 0.2


def display_filename(raw: str | None) -> str:
    """The user's name for the file, as metadata only: no directories, no control characters."""
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in unicodedata.normalize("NFC", name) if unicodedata.category(ch)[0] != "C")
    name = re.sub(r"\s+", " ", name).strip().lstrip(".")
    return name[:255] or "upload"


class DocumentService:
    def __init__(self, repository: DocumentRepository, store: VectorStore, uploads_dir: Path,
                 enqueue: Callable[[str], None], quota_bytes: int = 0) -> None:
        """`quota_bytes`: the most each user's files (every version) may take; 0 for no quota."""
        self._repository = repository
        self._quota_bytes = quota_bytes
        self._store = store
        self._uploads_dir = uploads_dir
        self._enqueue = enqueue

    def upload(self, user_id: int, filename: str | None, stream: IO[bytes],
               new_document: bool = False) -> tuple[DocumentView, bool]:
        """Store and queue an upload -> (document, True); nothing new to ingest -> (document, False).

        New content under the name of one of the user's documents becomes that document's next
        version (unless `new_document`); the same bytes as an older version of it restore that
        version; the same bytes as anything else return that document unchanged. Checks happen
        before anything is kept: empty (EmptyDocument) and unsupported or mismatched type
        (UnsupportedFileType). The stored file gets a server-made name; `filename` is metadata.
        """
        name = display_filename(filename)
        with self._received(stream, name) as incoming:
            same_name = None if new_document else self._repository.find_by_filename(user_id, name)
            return self._store_upload(user_id, same_name.family_id if same_name else None, name, incoming,
                                      match_name=not new_document)

    def replace(self, user_id: int, family_id: str, filename: str | None, stream: IO[bytes]) -> tuple[DocumentView, bool]:
        """PUT /documents/<id>: the file becomes the document's next version (same rules as upload);
        bytes that are another document already are DuplicateContent."""
        current = self._repository.get(user_id, family_id)  # not yours: 404 before reading the body
        name = display_filename(filename) if filename else current.filename
        with self._received(stream, name) as incoming:
            document, created = self._store_upload(user_id, family_id, name, incoming)
        if document.family_id != family_id:
            raise DuplicateContent("These bytes are already another of your documents",
                                   {"document_id": document.family_id, "filename": document.filename})
        return document, created

    def _store_upload(self, user_id: int, family_id: str | None, name: str, incoming: "Incoming",
                      match_name: bool = False) -> tuple[DocumentView, bool]:
        existing = self._repository.find_by_hash(user_id, incoming.sha256)
        if existing is not None and existing.status == STATUS_FAILED:  # failed before: try again from scratch
            if not self._discard(existing) and family_id == existing.family_id:
                family_id = None
            existing = None
        if existing is not None:
            if existing.family_id == family_id and not existing.is_head and existing.status == STATUS_READY:
                return self.restore(user_id, family_id, existing.version), False
            return self._repository.get(user_id, existing.family_id), False
        try:
            return self._create(user_id, family_id, name, incoming, match_name), True
        except DuplicateDocument as duplicate:  # uploaded twice at the same moment
            return self._repository.get(user_id, duplicate.existing.family_id), False

    def _create(self, user_id: int, family_id: str | None, name: str, incoming: "Incoming",
                match_name: bool) -> DocumentView:
        version_id = uuid.uuid4().hex
        storage_name = f"{version_id}.{incoming.doc_type}"
        target = self._uploads_dir / str(user_id) / storage_name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(incoming.path, target)
        fields = dict(id=version_id, user_id=user_id, filename=name, type=incoming.doc_type, sha256=incoming.sha256,
                      size_bytes=incoming.size, storage_name=storage_name)
        try:
            created = self._repository.add(family_id, match_name, quota_bytes=self._quota_bytes, **fields)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        self._enqueue(created.id)
        return self._repository.get(user_id, created.family_id)

    @contextmanager
    def _received(self, stream: IO[bytes], name: str) -> Iterator["Incoming"]:
        """The upload in a private temporary file, checked (not empty, a supported type), and
        removed again afterwards whatever happens."""
        path, sha256, size = self._receive(stream)
        try:
            if size == 0 or not _has_content(path):
                raise EmptyDocument("The file is empty")
            yield Incoming(path, sha256, size, detect_type(path, name))
        finally:
            path.unlink(missing_ok=True)

    def _receive(self, stream: IO[bytes]) -> tuple[Path, str, int]:
        """Copy the upload to a private temporary file, hashing it on the way."""
        incoming_dir = self._uploads_dir / ".incoming"
        incoming_dir.mkdir(parents=True, exist_ok=True)
        path = incoming_dir / uuid.uuid4().hex
        digest, size = hashlib.sha256(), 0
        with open(path, "wb") as out:
            while block := stream.read(COPY_BLOCK):
                digest.update(block)
                out.write(block)
                size += len(block)
        return path, digest.hexdigest(), size

    def get(self, user_id: int, document_id: str) -> DocumentView:
        return self._repository.get(user_id, document_id)

    def of_user(self, user_id: int) -> list[DocumentView]:
        return self._repository.of_user(user_id)

    def versions(self, user_id: int, document_id: str) -> list[DocumentView]:
        return self._repository.versions(user_id, document_id)

    def restore(self, user_id: int, document_id: str, version: int) -> DocumentView:
        """Make a ready older version the one shown and answered from (its chunks are moved back
        from the archive, nothing is embedded again)."""
        target = self._repository.version(user_id, document_id, version)
        if target.status == STATUS_READY:  # chunks in first, skipped by retrieval until it is live
            self._store.move(user_id, target.id, archived=False)
        change = self._repository.restore(user_id, document_id, version)
        self._store.apply(user_id, change)
        return self._repository.get(user_id, document_id)

    def delete(self, user_id: int, document_id: str) -> None:
        """Remove the document: every version's chunks, rows and files. Chunks go first: with the
        vector store down this is a 503 that changed nothing. A running job notices and cleans up."""
        for version in self._repository.versions(user_id, document_id):  # not yours: 404 first
            self._store.delete_document(user_id, version.id)
        for version in self._repository.remove(user_id, document_id):
            self._file(version).unlink(missing_ok=True)

    def delete_version(self, user_id: int, document_id: str, version: int) -> DocumentView:
        """Remove one version; the document that remains (LastVersion for its only version)."""
        target = self._repository.version(user_id, document_id, version, removable=True)  # refused before any change
        self._store.delete_document(user_id, target.id)
        removed, change = self._repository.remove_version(user_id, document_id, version)
        self._store.apply(user_id, change)
        self._file(removed).unlink(missing_ok=True)
        return self._repository.get(user_id, document_id)

    def _discard(self, version: DocumentView) -> bool:
        """Remove a (failed) version, the whole document when it is its only one; whether the
        document remains."""
        try:
            self.delete_version(version.user_id, version.family_id, version.version)
            return True
        except LastVersion:
            self.delete(version.user_id, version.family_id)
            return False

    def _file(self, version: DocumentView) -> Path:
        return self._uploads_dir / str(version.user_id) / version.storage_name

    def purge_user(self, user_id: int) -> None:
        """Remove a deleted user's files and chunks (their rows went with the user, by cascade)."""
        self._store.drop_user(user_id)
        shutil.rmtree(self._uploads_dir / str(user_id), ignore_errors=True)

    def wait(self, user_id: int, document_id: str, timeout_s: float) -> DocumentView:
        """Block until the document is ready or failed, or `timeout_s` passes; the latest state."""
        deadline = time.monotonic() + timeout_s
        document = self.get(user_id, document_id)
        while not document.finished and time.monotonic() < deadline:
            time.sleep(WAIT_POLL_S)
            document = self.get(user_id, document_id)
        return document


@dataclass(frozen=True)
class Incoming:
    """A received upload, checked, in its temporary file."""

    path: Path
    sha256: str
    size: int
    doc_type: str


def _has_content(path: Path) -> bool:
    """False for files of nothing but white space (and NULs)."""
    with open(path, "rb") as handle:
        while block := handle.read(COPY_BLOCK):
            if block.strip(b" \t\r\n\x00\x0b\x0c"):
                return True
    return False


