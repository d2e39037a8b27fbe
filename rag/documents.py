"""The document service: accept an upload safely into a space, deduplicate, queue it; list, read,
wait, delete, with the caller's access to the space checked at every call."""
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

from rag.errors import DocumentNotFound, DuplicateContent, EmptyDocument, LastVersion
from rag.models import STATUS_FAILED, STATUS_READY
from rag.repository import DocumentRepository, DocumentView, DuplicateDocument
from rag.spaces import READ, WRITE, Space, Spaces
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
    """Documents in spaces: the caller's own, or a workspace's. Every call that names a document
    finds its space first and checks the caller's access to it now (a viewer reads, an editor
    also writes); a document the caller cannot read is DocumentNotFound, like an unknown id."""

    def __init__(self, repository: DocumentRepository, store: VectorStore, uploads_dir: Path,
                 enqueue: Callable[[str], None], spaces: Spaces, detect_type: Callable[[Path, str], str],
                 quota_bytes: int = 0) -> None:
        """`detect_type`: (stored path, filename) -> the document type, raising UnsupportedFileType
        (ingest/sniff.py); `quota_bytes`: the most each user's uploads (every version, every space)
        may take; 0 for no quota."""
        self._repository = repository
        self._detect_type = detect_type
        self._quota_bytes = quota_bytes
        self._store = store
        self._uploads_dir = uploads_dir
        self._enqueue = enqueue
        self._spaces = spaces

    def upload(self, user_id: int, filename: str | None, stream: IO[bytes], new_document: bool = False,
               workspace_id: str | None = None) -> tuple[DocumentView, bool]:
        """Store and queue an upload -> (document, True); nothing new to ingest -> (document, False).

        It goes to the caller's own space, or to `workspace_id` (editors and owners only). New
        content under the name of one of the space's documents becomes that document's next
        version (unless `new_document`); the same bytes as an older version of it restore that
        version; the same bytes as anything else in the space return that document unchanged.
        Checks happen before anything is kept: empty (EmptyDocument) and unsupported or
        mismatched type (UnsupportedFileType). The stored file gets a server-made name;
        `filename` is metadata.
        """
        space = self._spaces.for_upload(user_id, workspace_id)
        name = display_filename(filename)
        with self._received(stream, name) as incoming:
            same_name = None if new_document else self._repository.find_by_filename(space, name)
            return self._store_upload(user_id, space, same_name.family_id if same_name else None, name, incoming,
                                      match_name=not new_document)

    def replace(self, user_id: int, family_id: str, filename: str | None, stream: IO[bytes]) -> tuple[DocumentView, bool]:
        """PUT /documents/<id>: the file becomes the document's next version (same rules as upload);
        bytes that are another document already are DuplicateContent."""
        space = self._space(user_id, family_id, WRITE)  # not yours: 404 before reading the body
        current = self._repository.get(space, family_id)
        name = display_filename(filename) if filename else current.filename
        with self._received(stream, name) as incoming:
            document, created = self._store_upload(user_id, space, family_id, name, incoming)
        if document.family_id != family_id:
            raise DuplicateContent("These bytes are already another document of this space",
                                   {"document_id": document.family_id, "filename": document.filename})
        return document, created

    def _space(self, user_id: int, family_id: str, needed: str) -> Space:
        """The space of the document, once the caller's role there allows `needed`."""
        missing = DocumentNotFound("No such document")
        space = self._repository.space_of(family_id)
        if space is None:
            raise missing
        self._spaces.check(user_id, space, needed, missing)
        return space

    def _store_upload(self, user_id: int, space: Space, family_id: str | None, name: str, incoming: "Incoming",
                      match_name: bool = False) -> tuple[DocumentView, bool]:
        existing = self._repository.find_by_hash(space, incoming.sha256)
        if existing is not None and existing.status == STATUS_FAILED:  # failed before: try again from scratch
            if not self._discard(existing) and family_id == existing.family_id:
                family_id = None
            existing = None
        if existing is not None:
            if existing.family_id == family_id and not existing.is_head and existing.status == STATUS_READY:
                return self._restore(space, family_id, existing.version), False
            return self._repository.get(space, existing.family_id), False
        try:
            return self._create(user_id, space, family_id, name, incoming, match_name), True
        except DuplicateDocument as duplicate:  # uploaded twice at the same moment
            return self._repository.get(space, duplicate.existing.family_id), False

    def _create(self, user_id: int, space: Space, family_id: str | None, name: str, incoming: "Incoming",
                match_name: bool) -> DocumentView:
        version_id = uuid.uuid4().hex
        storage_name = f"{version_id}.{incoming.doc_type}"
        target = self._uploads_dir / space.folder / storage_name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(incoming.path, target)
        fields = dict(id=version_id, user_id=user_id, filename=name, type=incoming.doc_type, sha256=incoming.sha256,
                      size_bytes=incoming.size, storage_name=storage_name)
        try:
            created = self._repository.add(space, family_id, match_name, quota_bytes=self._quota_bytes, **fields)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        self._enqueue(created.id)
        return self._repository.get(space, created.family_id)

    @contextmanager
    def _received(self, stream: IO[bytes], name: str) -> Iterator["Incoming"]:
        """The upload in a private temporary file, checked (not empty, a supported type), and
        removed again afterwards whatever happens."""
        path, sha256, size = self._receive(stream)
        try:
            if size == 0 or not _has_content(path):
                raise EmptyDocument("The file is empty")
            yield Incoming(path, sha256, size, self._detect_type(path, name))
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
        return self._repository.get(self._space(user_id, document_id, READ), document_id)

    def listed(self, user_id: int, workspace_id: str | None = None) -> list[DocumentView]:
        """The caller's own documents, or (as a member) a workspace's, newest first."""
        return self._repository.of_space(self._spaces.for_listing(user_id, workspace_id))

    def versions(self, user_id: int, document_id: str) -> list[DocumentView]:
        return self._repository.versions(self._space(user_id, document_id, READ), document_id)

    def restore(self, user_id: int, document_id: str, version: int) -> DocumentView:
        """Make a ready older version the one shown and answered from (its chunks are moved back
        from the archive, nothing is embedded again)."""
        return self._restore(self._space(user_id, document_id, WRITE), document_id, version)

    def _restore(self, space: Space, document_id: str, version: int) -> DocumentView:
        target = self._repository.version(space, document_id, version)
        if target.status == STATUS_READY:  # chunks in first, skipped by retrieval until it is live
            self._store.move(space, target.id, archived=False)
        change = self._repository.restore(space, document_id, version)
        self._store.apply(space, change)
        return self._repository.get(space, document_id)

    def delete(self, user_id: int, document_id: str) -> DocumentView:
        """Remove the document (editors and owners, in a workspace): every version's chunks,
        rows and files; the document as it was. Chunks go first: with the vector store down this
        is a 503 that changed nothing. A running job notices and cleans up."""
        space = self._space(user_id, document_id, WRITE)
        document = self._repository.get(space, document_id)
        self._delete(space, document_id)
        return document

    def _delete(self, space: Space, document_id: str) -> None:
        for version in self._repository.versions(space, document_id):
            self._store.delete_document(space, version.id)
        for version in self._repository.remove(space, document_id):
            version.file_in(self._uploads_dir).unlink(missing_ok=True)

    def delete_version(self, user_id: int, document_id: str, version: int) -> DocumentView:
        """Remove one version; the document that remains (LastVersion for its only version)."""
        return self._delete_version(self._space(user_id, document_id, WRITE), document_id, version)

    def _delete_version(self, space: Space, document_id: str, version: int) -> DocumentView:
        target = self._repository.version(space, document_id, version, removable=True)  # refused before any change
        self._store.delete_document(space, target.id)
        removed, change = self._repository.remove_version(space, document_id, version)
        self._store.apply(space, change)
        removed.file_in(self._uploads_dir).unlink(missing_ok=True)
        return self._repository.get(space, document_id)

    def _discard(self, version: DocumentView) -> bool:
        """Remove a (failed) version, the whole document when it is its only one; whether the
        document remains."""
        try:
            self._delete_version(version.space, version.family_id, version.version)
            return True
        except LastVersion:
            self._delete(version.space, version.family_id)
            return False

    def purge_user(self, user_id: int) -> None:
        """Remove a deleted user's own files and chunks (their rows went with the user, by cascade)."""
        self._purge(Space.personal(user_id))

    def purge_workspace(self, workspace_id: str) -> None:
        """Remove a workspace's documents: chunks first, then rows and files."""
        self._purge(Space.workspace(workspace_id))

    def _purge(self, space: Space) -> None:
        self._store.drop_space(space)
        self._repository.remove_space(space)
        shutil.rmtree(self._uploads_dir / space.folder, ignore_errors=True)

    def hand_over(self, user_id: int, new_uploader: Callable[[str], int | None]) -> None:
        """Before an account goes, its uploads to workspaces pass to `new_uploader(workspace)`
        (an owner there), so the team keeps them; the user's quota no longer counts them."""
        heirs = {workspace_id: new_uploader(workspace_id) for workspace_id in self._repository.workspaces_uploaded_to(user_id)}
        self._repository.hand_over(user_id, {workspace: heir for workspace, heir in heirs.items() if heir is not None})

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


