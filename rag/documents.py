"""The document service: accept an upload safely, deduplicate, queue it; list, read, wait, delete."""
from __future__ import annotations

import hashlib
import re
import shutil
import time
import unicodedata
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from common.errors import EmptyDocument
from rag.models import STATUS_FAILED
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
                 enqueue: Callable[[str], None]) -> None:
        self._repository = repository
        self._store = store
        self._uploads_dir = uploads_dir
        self._enqueue = enqueue

    def upload(self, user_id: int, filename: str | None, stream: BinaryIO) -> tuple[DocumentView, bool]:
        """Store and queue a new document -> (document, True); the same bytes again -> (existing, False).

        Checks happen before anything is kept: empty (EmptyDocument) and unsupported or mismatched
        type (UnsupportedFileType). The stored file gets a server-made name; `filename` is metadata.
        """
        name = display_filename(filename)
        incoming, sha256, size = self._receive(stream)
        try:
            if size == 0 or not _has_content(incoming):
                raise EmptyDocument("The file is empty")
            doc_type = detect_type(incoming, name)
            existing = self._repository.find_by_hash(user_id, sha256)
            if existing is not None and existing.status != STATUS_FAILED:
                return existing, False
            if existing is not None:  # the same bytes failed before: try again from scratch
                self.delete(user_id, existing.id)
            return self._create(user_id, name, doc_type, sha256, size, incoming), True
        except DuplicateDocument as duplicate:  # uploaded twice at the same moment
            return duplicate.existing, False
        finally:
            incoming.unlink(missing_ok=True)

    def _create(self, user_id: int, name: str, doc_type: str, sha256: str, size: int, incoming: Path) -> DocumentView:
        document_id = uuid.uuid4().hex
        storage_name = f"{document_id}.{doc_type}"
        target = self._uploads_dir / str(user_id) / storage_name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(incoming, target)
        try:
            document = self._repository.create(id=document_id, user_id=user_id, filename=name, type=doc_type,
                                               sha256=sha256, size_bytes=size, storage_name=storage_name)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        self._enqueue(document.id)
        return document

    def _receive(self, stream: BinaryIO) -> tuple[Path, str, int]:
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

    def list(self, user_id: int) -> list[DocumentView]:
        return self._repository.list(user_id)

    def delete(self, user_id: int, document_id: str) -> None:
        """Remove the chunks, the record and the file. Chunks go first: with the vector store down
        this is a 503 that changed nothing. A running job notices and cleans up after itself."""
        self._repository.get(user_id, document_id)  # not yours: 404 before anything happens
        self._store.delete_document(user_id, document_id)
        document = self._repository.remove(user_id, document_id)
        (self._uploads_dir / str(user_id) / document.storage_name).unlink(missing_ok=True)

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


def _has_content(path: Path) -> bool:
    """False for files of nothing but white space (and NULs)."""
    with open(path, "rb") as handle:
        while block := handle.read(COPY_BLOCK):
            if block.strip(b" \t\r\n\x00\x0b\x0c"):
                return True
    return False


