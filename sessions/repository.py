"""Session rows: ownership-checked reads, appending turns in order, summaries, branches, retention."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from common.database import Database, affected_rows, utcnow
from sessions.errors import SessionNotFound
from sessions.models import ChatMessage, ChatSession

APPEND_ATTEMPTS = 5


@dataclass(frozen=True)
class MessageView:
    position: int
    role: str
    content: str
    created_at: datetime
    sources: list[dict[str, Any]] | None = None
    details: dict[str, Any] | None = None

    @classmethod
    def of(cls, row: ChatMessage) -> "MessageView":
        return cls(row.position, row.role, row.content, row.created_at, row.sources, row.details)


@dataclass(frozen=True)
class NewMessage:
    role: str
    content: str
    sources: list[dict[str, Any]] | None = None
    details: dict[str, Any] | None = None


@dataclass(frozen=True)
class SessionView:
    key: int
    id: str
    user_id: int
    title: str
    summary: str | None
    summarized_count: int
    branched_from: str | None
    created_at: datetime
    last_active: datetime
    message_count: int = 0
    messages: list[MessageView] = field(default_factory=list)
    scope: dict[str, list[str]] | None = None  # what it searches; None: all its user can read
    model: str | None = None  # the models.json id it answers with; None: the active model

    @classmethod
    def of(cls, row: ChatSession, message_count: int = 0, messages: list[MessageView] | None = None) -> "SessionView":
        return cls(row.id, row.public_id, row.user_id, row.title, row.summary, row.summarized_count,
                   row.branched_from, row.created_at, row.last_active, message_count, messages or [], row.scope,
                   row.model)


class SessionRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def create(self, user_id: int, public_id: str, title: str, messages: list[NewMessage] | None = None,
               summary: str | None = None, summarized_count: int = 0, branched_from: str | None = None,
               scope: dict[str, list[str]] | None = None, model: str | None = None) -> SessionView:
        """A new session (with copied messages, for a branch); IntegrityError if the id is taken."""
        with self._db.session() as session:
            row = ChatSession(public_id=public_id, user_id=user_id, title=title, summary=summary,
                              summarized_count=summarized_count, branched_from=branched_from, scope=scope,
                              model=model)
            session.add(row)
            session.flush()
            for position, message in enumerate(messages or []):
                session.add(_message_row(row.id, position, message))
        return self.get(user_id, public_id)

    def get(self, user_id: int, public_id: str) -> SessionView:
        """The user's session with its messages; another user's is SessionNotFound, like a missing one."""
        with self._db.session() as session:
            row = _owned(session, user_id, public_id)
            rows = session.scalars(select(ChatMessage).where(ChatMessage.session_id == row.id)
                                   .order_by(ChatMessage.position)).all()
            messages = [MessageView.of(message) for message in rows]
            return SessionView.of(row, len(messages), messages)

    def exists(self, user_id: int, public_id: str) -> bool:
        with self._db.session() as session:
            return session.scalar(select(ChatSession.id).where(ChatSession.user_id == user_id,
                                                               ChatSession.public_id == public_id)) is not None

    def of_user(self, user_id: int) -> list[SessionView]:
        """The user's sessions, most recently active first, with message counts (no messages)."""
        counts = (select(ChatMessage.session_id, func.count(ChatMessage.id).label("n"))
                  .group_by(ChatMessage.session_id).subquery())
        with self._db.session() as session:
            rows = session.execute(
                select(ChatSession, func.coalesce(counts.c.n, 0))
                .outerjoin(counts, counts.c.session_id == ChatSession.id)
                .where(ChatSession.user_id == user_id)
                .order_by(ChatSession.last_active.desc(), ChatSession.id.desc())
            ).all()
            return [SessionView.of(row, count) for row, count in rows]

    def append(self, user_id: int, public_id: str, messages: list[NewMessage]) -> list[MessageView]:
        """Add turns at the end, in one transaction; concurrent appends to one session both land, in order."""
        for attempt in range(APPEND_ATTEMPTS):
            try:
                with self._db.session() as session:
                    row = _owned(session, user_id, public_id, lock=True)  # PostgreSQL: appenders take turns
                    # SQLite ignores FOR UPDATE and starts its transaction at the first write: writing
                    # first takes the write lock (waiting busy_timeout), so the count below is the
                    # latest. Counting first let two appenders read one snapshot, and the later
                    # writer failed with "database is locked" instead of waiting (a flaky test).
                    session.execute(update(ChatSession).where(ChatSession.id == row.id).values(last_active=utcnow()))
                    start = session.scalar(select(func.count(ChatMessage.id))
                                           .where(ChatMessage.session_id == row.id)) or 0
                    rows = [_message_row(row.id, start + offset, message) for offset, message in enumerate(messages)]
                    session.add_all(rows)
                    session.flush()
                    return [MessageView.of(message) for message in rows]
            except IntegrityError:
                if attempt == APPEND_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def rename(self, user_id: int, public_id: str, title: str) -> SessionView:
        with self._db.session() as session:
            _owned(session, user_id, public_id).title = title
        return self.get(user_id, public_id)

    def set_model(self, user_id: int, public_id: str, model: str) -> None:
        with self._db.session() as session:
            _owned(session, user_id, public_id).model = model

    def set_scope(self, user_id: int, public_id: str, scope: dict[str, list[str]] | None) -> None:
        with self._db.session() as session:
            _owned(session, user_id, public_id).scope = scope

    def set_summary(self, session_key: int, summary: str, summarized_count: int) -> None:
        """Store a newer rolling summary; an older one never overwrites it (two requests may race)."""
        with self._db.session() as session:
            session.execute(update(ChatSession)
                            .where(ChatSession.id == session_key, ChatSession.summarized_count <= summarized_count)
                            .values(summary=summary, summarized_count=summarized_count))

    def delete(self, user_id: int, public_id: str) -> None:
        with self._db.session() as session:
            session.delete(_owned(session, user_id, public_id))

    def inactive_since(self, cutoff: datetime) -> list[SessionView]:
        with self._db.session() as session:
            rows = session.scalars(select(ChatSession).where(ChatSession.last_active < cutoff)
                                   .order_by(ChatSession.last_active)).all()
            return [SessionView.of(row) for row in rows]

    def delete_if_inactive(self, session_key: int, cutoff: datetime) -> bool:
        """Delete a session only if nothing happened in it since `cutoff` (checked in the same statement)."""
        with self._db.session() as session:
            result = session.execute(delete(ChatSession).where(ChatSession.id == session_key,
                                                               ChatSession.last_active < cutoff))
            return bool(affected_rows(result))


def _owned(session: Session, user_id: int, public_id: str, lock: bool = False) -> ChatSession:
    query = select(ChatSession).where(ChatSession.user_id == user_id, ChatSession.public_id == public_id)
    row = session.scalar(query.with_for_update() if lock else query)
    if row is None:
        raise SessionNotFound("No such chat session")
    return row


def _message_row(session_key: int, position: int, message: NewMessage) -> ChatMessage:
    return ChatMessage(session_id=session_key, position=position, role=message.role, content=message.content,
                       sources=message.sources, details=message.details)
