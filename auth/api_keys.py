"""API keys: created for a user, shown once, stored as a SHA-256, accepted as a Bearer token."""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from auth.models import ApiKey, User
from auth.users import UserView
from common.database import Database, utcnow
from common.errors import NotFound

KEY_PREFIX = "dck_"  # tells an API key from a JWT at a glance
LAST_USED_RESOLUTION = timedelta(minutes=1)  # don't write on every request


@dataclass(frozen=True)
class ApiKeyView:
    id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> "ApiKeyView":
        return cls(key.id, key.name, key.prefix, key.created_at, key.last_used_at)


def looks_like_api_key(token: str) -> bool:
    return token.startswith(KEY_PREFIX)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeyService:
    def __init__(self, db: Database) -> None:
        self._db = db

    def create(self, user_id: int, name: str) -> tuple[ApiKeyView, str]:
        """Make a key; the plain key is returned here and never again."""
        plain = KEY_PREFIX + secrets.token_urlsafe(32)
        with self._db.session() as session:
            key = ApiKey(user_id=user_id, name=name, prefix=plain[: len(KEY_PREFIX) + 6], key_hash=_digest(plain))
            session.add(key)
            session.flush()
            return ApiKeyView.of(key), plain

    def list(self, user_id: int) -> list[ApiKeyView]:
        with self._db.session() as session:
            keys = session.scalars(select(ApiKey).where(ApiKey.user_id == user_id).order_by(ApiKey.id))
            return [ApiKeyView.of(key) for key in keys]

    def delete(self, user_id: int, key_id: int) -> None:
        with self._db.session() as session:
            key = session.get(ApiKey, key_id)
            if key is None or key.user_id != user_id:
                raise NotFound("No such API key")
            session.delete(key)

    def user_for(self, plain: str) -> UserView | None:
        """The owner of a valid key, loaded fresh (role changes apply at once), or None."""
        with self._db.session() as session:
            row = session.execute(
                select(ApiKey, User).join(User, User.id == ApiKey.user_id).where(ApiKey.key_hash == _digest(plain))
            ).first()
            if row is None:
                return None
            key, user = row
            now = utcnow()
            if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
                key.last_used_at = now
            return UserView.of(user)
