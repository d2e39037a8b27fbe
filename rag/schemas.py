"""Request and response schemas of the document routes."""
from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from rag.repository import DocumentView
from rag.retriever import Source


class DocumentOut(BaseModel):
    id: str
    filename: str = Field(description="The uploader's file name (metadata only; stored under a server-made name)")
    type: str = Field(description="pdf, docx, html, md, csv or txt")
    sha256: str
    size_bytes: int
    status: str = Field(description="queued, processing, ready or failed")
    progress: float = Field(description="0.0 to 1.0")
    chunks: int
    pages: int | None = Field(description="PDF page count; null where the format has no pages")
    error: str | None = Field(description="Why ingestion failed; null unless failed")
    created_at: datetime

    @classmethod
    def of(cls, document: DocumentView) -> "DocumentOut":
        return cls.model_validate(document, from_attributes=True)


class DocumentEnvelope(BaseModel):
    document: DocumentOut


class DocumentList(BaseModel):
    documents: list[DocumentOut]


class UploadQuery(BaseModel):
    wait: bool = Field(default=False, description="Answer only once the document is ready (201) or failed (422)")


class SearchRequest(BaseModel):
    query: str = Field(min_length=1, max_length=4000)
    k: int | None = Field(default=None, ge=1, le=50, description="How many chunks to return (default SEARCH_TOP_K)")


class SourceOut(BaseModel):
    document_id: str
    filename: str
    page: int | None = Field(description="1-based PDF page; null where the format has none")
    chunk_index: int
    score: float = Field(description="Cosine similarity, higher is closer")
    excerpt: str
    section: str | None = Field(description="Title of the section (DOCX, HTML, Markdown)")
    row: int | None = Field(description="1-based data row (CSV)")

    @classmethod
    def of(cls, source: Source) -> "SourceOut":
        return cls.model_validate(source, from_attributes=True)


class SearchResults(BaseModel):
    results: list[SourceOut]
