"""Revoked logins, kept in the database so a logout holds across restarts and workers."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from auth.models import RevokedLogin
from common.database import Database, affected_rows, utcnow


class RevocationList:
    def __init__(self, db: Database) -> None:
        self._db = db

    def revoke(self, login_id: str, user_id: int, expires_at: datetime) -> None:
        """Refuse from now on every token of this login. Revoking twice is harmless."""
        try:
            with self._db.session() as session:
                session.add(RevokedLogin(login_id=login_id, user_id=user_id, expires_at=expires_at))
        except IntegrityError:
            pass

    def is_revoked(self, login_id: str) -> bool:
        with self._db.session() as session:
            return session.get(RevokedLogin, login_id) is not None

    def prune(self) -> int:
        """Forget revocations whose tokens have expired anyway; returns how many."""
        with self._db.session() as session:
            result = session.execute(delete(RevokedLogin).where(RevokedLogin.expires_at < utcnow()))
            return affected_rows(result)
