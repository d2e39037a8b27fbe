"""Session management: start, list, read, rename, delete, branch, export, and the retention policy."""
from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError

from common.database import utcnow
from common.errors import ValidationFailed
from rag.spaces import Scope
from sessions.repository import NewMessage, SessionRepository, SessionView

log = logging.getLogger(__name__)

DEFAULT_TITLE = "New chat"
TITLE_CHARS = 60


def title_from(message: str) -> str:
    """A title from a first message: its first words, cut at a word boundary."""
    words = " ".join(message.split())
    if len(words) <= TITLE_CHARS:
        return words or DEFAULT_TITLE
    return words[:TITLE_CHARS].rsplit(" ", 1)[0] + "…"


class SessionService:
    def __init__(self, repository: SessionRepository, retention_days: int = 0,
                 check_scope: Callable[[int, Scope], object] = lambda _user_id, _scope: None,
                 check_model: Callable[[str], object] = lambda _model: None) -> None:
        """`check_scope(user_id, scope)` raises a NotFound when the scope names anything the user
        cannot read (the retriever's strict check)."""
        self._repository = repository
        self.retention_days = retention_days
        self._check_scope = check_scope
        self._check_model = check_model

    def start(self, user_id: int, title: str | None = None, session_id: str | None = None,
              scope: Scope | None = None, model: str | None = None) -> tuple[SessionView, bool]:
        """A new session, or the caller's existing one when `session_id` names it: (session, created).
        `scope` limits what it searches (checked first: 404 for anything unreadable); `model`, a
        models.json id, answers it instead of the active model (404 for an unknown one). Given on
        resume, either replaces the session's."""
        if scope is not None:
            self._check_scope(user_id, scope)
        if model is not None:
            self._check_model(model)
        stored = scope.as_dict() if scope is not None else None
        if session_id and self._repository.exists(user_id, session_id):
            if scope is not None:
                self._repository.set_scope(user_id, session_id, stored)
            if model is not None:
                self._repository.set_model(user_id, session_id, model)
            return self._repository.get(user_id, session_id), False
        try:
            session = self._repository.create(user_id, session_id or secrets.token_hex(16), title or DEFAULT_TITLE,
                                              scope=stored, model=model)
        except IntegrityError:  # the same id started twice at once: the other request made it
            return self._repository.get(user_id, str(session_id)), False
        return session, True

    def get(self, user_id: int, session_id: str) -> SessionView:
        return self._repository.get(user_id, session_id)

    def of_user(self, user_id: int) -> list[SessionView]:
        return self._repository.of_user(user_id)

    def rename(self, user_id: int, session_id: str, title: str) -> SessionView:
        return self._repository.rename(user_id, session_id, title)

    def delete(self, user_id: int, session_id: str) -> None:
        self._repository.delete(user_id, session_id)

    def branch(self, user_id: int, session_id: str, at: int) -> SessionView:
        """A new session holding the messages before index `at`; the original is untouched."""
        source = self._repository.get(user_id, session_id)
        if not 0 <= at <= source.message_count:
            raise ValidationFailed(f"`at` must be between 0 and {source.message_count} for this session",
                                   {"fields": [{"field": "at", "message": "out of range", "type": "range"}]})
        copied = [NewMessage(m.role, m.content, m.sources, m.details) for m in source.messages[:at]]
        keeps_summary = source.summary is not None and source.summarized_count <= at
        return self._repository.create(
            user_id, secrets.token_hex(16), _branch_title(source.title), copied,
            summary=source.summary if keeps_summary else None,
            summarized_count=source.summarized_count if keeps_summary else 0, branched_from=source.id,
            scope=source.scope, model=source.model,
        )

    def expires_at(self, session: SessionView) -> datetime | None:
        """When the retention policy will delete this session if nothing happens in it (None: never)."""
        return session.last_active + timedelta(days=self.retention_days) if self.retention_days > 0 else None

    def expire_inactive(self) -> list[SessionView]:
        """Delete sessions idle for longer than the retention period, logging each one (off at 0 days)."""
        if self.retention_days <= 0:
            return []
        cutoff = utcnow() - timedelta(days=self.retention_days)
        deleted = []
        for session in self._repository.inactive_since(cutoff):
            if self._repository.delete_if_inactive(session.key, cutoff):
                log.warning("retention: deleted chat session %s of user %s, inactive since %s (CHAT_RETENTION_DAYS=%d)",
                            session.id, session.user_id, session.last_active.isoformat(), self.retention_days)
                deleted.append(session)
        return deleted


def _branch_title(title: str) -> str:
    suffix = " (branch)"
    return title if title.endswith(suffix) else (title[: 200 - len(suffix)] + suffix)
