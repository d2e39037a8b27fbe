"""Tables of chat sessions: a session per conversation and its messages, in order."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from common.database import Base, UTCDateTime, utcnow


class ChatSession(Base):
    """One conversation. `summary` covers the first `summarized_count` messages (for prompts only)."""

    __tablename__ = "chat_sessions"
    __table_args__ = (UniqueConstraint("user_id", "public_id", name="uq_chat_sessions_user_public_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    summary: Mapped[str | None] = mapped_column(Text, nullable=True)
    summarized_count: Mapped[int] = mapped_column(Integer, default=0)
    branched_from: Mapped[str | None] = mapped_column(String(64), nullable=True)
    scope: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # None: all the user can read
    model: Mapped[str | None] = mapped_column(String(200), nullable=True)  # None: the active model answers
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_active: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class ChatMessage(Base):
    """One turn. Assistant turns keep the sources they cited and how they were generated."""

    __tablename__ = "chat_messages"
    __table_args__ = (UniqueConstraint("session_id", "position", name="uq_chat_messages_session_position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("chat_sessions.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    sources: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
