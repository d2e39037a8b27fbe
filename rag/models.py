"""The documents table: one row per uploaded version of a file, its ingestion status and progress.

Versions of one document share `family_id` (the document's public id: the first version's row id)
and are numbered from 1. `is_head` marks the version the user sees (the newest upload, or the one
restored); `is_live` the version answers come from: the head once it is ready, until then the
version that was live before. Exactly one of each per family, enforced by partial unique indexes.
Chunks of the live version sit in its space's live vector collection; those of other ready versions
in the archive collection, so they never mix in retrieval and a restore needs no re-embedding.
A document lives in its uploader's (`user_id`) personal space, or with `workspace_id` in that
workspace; the same bytes are one document per space.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from common.database import Base, UTCDateTime, utcnow

STATUS_QUEUED = "queued"
STATUS_PROCESSING = "processing"
STATUS_READY = "ready"
STATUS_FAILED = "failed"


class Document(Base):
    __tablename__ = "documents"
    __table_args__ = (
        Index("uq_documents_personal_sha256", "user_id", "sha256", unique=True,
              sqlite_where=text("workspace_id IS NULL"), postgresql_where=text("workspace_id IS NULL")),
        Index("uq_documents_workspace_sha256", "workspace_id", "sha256", unique=True,
              sqlite_where=text("workspace_id IS NOT NULL"), postgresql_where=text("workspace_id IS NOT NULL")),
        UniqueConstraint("family_id", "version", name="uq_documents_family_version"),
        Index("uq_documents_family_head", "family_id", unique=True,
              sqlite_where=text("is_head"), postgresql_where=text("is_head")),
        Index("uq_documents_family_live", "family_id", unique=True,
              sqlite_where=text("is_live"), postgresql_where=text("is_live")),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    workspace_id: Mapped[str | None] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True,
                                                     nullable=True)
    family_id: Mapped[str] = mapped_column(String(32), index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    is_head: Mapped[bool] = mapped_column(Boolean, default=True)
    is_live: Mapped[bool] = mapped_column(Boolean, default=False)
    filename: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(8))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    storage_name: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=STATUS_QUEUED, index=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    chunks: Mapped[int] = mapped_column(Integer, default=0)
    pages: Mapped[int | None] = mapped_column(Integer, nullable=True)
    ocr_pages: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    table_pages_skipped: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    worker_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
