"""Request and response schemas of the document routes."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from api.pagination import PageQuery
from rag.repository import DocumentView
from rag.retriever import Source
from rag.spaces import Scope

MAX_SCOPE_ITEMS = 200


class VersionOut(BaseModel):
    version: int = Field(description="1 for the first upload, then one more for each new content")
    current: bool = Field(description="Answers come from this version")
    filename: str
    type: str
    sha256: str
    size_bytes: int
    status: str = Field(description="queued, processing, ready or failed")
    progress: float = Field(description="0.0 to 1.0")
    chunks: int
    pages: int | None
    ocr_pages: int
    table_pages_skipped: int
    error: str | None
    created_at: datetime

    @classmethod
    def of(cls, document: DocumentView) -> "VersionOut":
        return cls.model_validate({**_fields(document), "current": document.is_live})


class DocumentOut(BaseModel):
    """The document as its head version (the newest upload, or the version restored) shows it."""

    id: str = Field(description="The document's id, the same for all its versions")
    filename: str = Field(description="The uploader's file name (metadata only; stored under a server-made name)")
    type: str = Field(description="pdf, docx, doc, html, md, csv, txt, pptx, xlsx, epub or eml")
    sha256: str
    size_bytes: int
    status: str = Field(description="queued, processing, ready or failed")
    progress: float = Field(description="0.0 to 1.0")
    chunks: int
    pages: int | None = Field(description="PDF pages or PPTX slides; null where the format has no pages")
    ocr_pages: int = Field(description="PDF pages without a text layer, read by OCR")
    table_pages_skipped: int = Field(description="PDF pages with drawings whose tables were not looked for "
                                     "(past the first 300 such pages, TABLE_PAGES in ingest/loaders/pdf.py); they keep their plain text")
    error: str | None = Field(description="Why ingestion failed; null unless failed")
    created_at: datetime
    version: int = Field(description="The version shown here: the newest upload, or the one restored")
    versions: int = Field(description="How many versions the document has (GET /documents/<id>/versions)")
    current_version: int | None = Field(description="The version answers come from: `version` once it is "
                                        "ready; until then the one before; null while none is ready")
    workspace_id: str | None = Field(description="The workspace the document is in; null for its owner's "
                                     "personal space")

    @classmethod
    def of(cls, document: DocumentView) -> "DocumentOut":
        return cls.model_validate({**_fields(document), "id": document.family_id, "versions": document.versions,
                                   "current_version": document.live_version, "workspace_id": document.workspace_id})


def _fields(document: DocumentView) -> dict[str, object]:
    names = ("filename", "type", "sha256", "size_bytes", "status", "progress", "chunks", "pages", "ocr_pages",
             "table_pages_skipped", "error",
             "created_at", "version")
    return {name: getattr(document, name) for name in names}


class DocumentEnvelope(BaseModel):
    document: DocumentOut


NEXT_CURSOR = "Pass as `cursor` for the next page; null on the last page"


class DocumentList(BaseModel):
    documents: list[DocumentOut]
    next_cursor: str | None = Field(description=NEXT_CURSOR)


class VersionList(BaseModel):
    document: DocumentOut
    versions: list[VersionOut] = Field(description="Newest first")
    next_cursor: str | None = Field(description=NEXT_CURSOR)


class ReplaceQuery(BaseModel):
    wait: bool = Field(default=False, description="Answer only once the upload is ready (201) or failed (422)")


class UploadQuery(ReplaceQuery):
    new_document: bool = Field(default=False, description="Keep it a separate document even when one of the "
                               "space's has the same file name (by default it becomes that document's new version)")
    workspace: str | None = Field(default=None, max_length=64, description="Upload into this workspace (editor "
                                  "or owner) instead of your personal space")


class DocumentListQuery(PageQuery):
    workspace: str | None = Field(default=None, max_length=64, description="List this workspace's documents "
                                  "(any member) instead of your own")


class ScopeIn(BaseModel):
    """What a chat searches: whole workspaces (\"personal\" for your own space) and single documents.
    Left out, or both lists empty: everything you can read, as of each question."""

    model_config = ConfigDict(extra="forbid")

    workspaces: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(default_factory=list,
                                                                                 max_length=MAX_SCOPE_ITEMS)
    documents: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(default_factory=list,
                                                                                max_length=MAX_SCOPE_ITEMS)

    def scope(self) -> Scope:
        return Scope(tuple(dict.fromkeys(self.workspaces)), tuple(dict.fromkeys(self.documents)))


class SearchRequest(BaseModel):
    query: str = Field(min_length=1, max_length=4000)
    k: int | None = Field(default=None, ge=1, le=50, description="How many chunks to return (default SEARCH_TOP_K)")


class SourceOut(BaseModel):
    """A cited chunk: search results, chat answers and their stored history all use this shape."""

    document_id: str
    filename: str
    version: int | None = Field(default=None, description="The document version the chunk comes from "
                                "(absent in answers stored before versions existed)")
    page: int | None = Field(description="1-based PDF page; null where the format has none")
    chunk_index: int
    score: float = Field(description="Cosine similarity, higher is closer")
    excerpt: str
    section: str | None = Field(default=None, description="Title of the section (DOCX, HTML, Markdown)")
    row: int | None = Field(default=None, description="1-based data row (CSV)")
    workspace_id: str | None = Field(default=None, description="The document's workspace; null for the personal "
                                     "space")

    @classmethod
    def of(cls, source: Source) -> "SourceOut":
        return cls.model_validate(source, from_attributes=True)


class SearchResults(BaseModel):
    results: list[SourceOut]
