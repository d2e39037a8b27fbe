"""Tables of the auth package: users, API keys, revoked logins."""
from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from common.database import Base, UTCDateTime, utcnow

ROLE_USER = "user"
ROLE_ADMIN = "admin"
ROLES = (ROLE_USER, ROLE_ADMIN)


def new_token_key() -> str:
    return secrets.token_hex(16)


class User(Base):
    """An account. Ids are never reused (AUTOINCREMENT on SQLite, a sequence on PostgreSQL), and
    every token carries the account's `token_key`: a token outlives neither its account nor a
    rotation of the key, even where an id could come back (a restored backup)."""

    __tablename__ = "users"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default=ROLE_USER)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    token_key: Mapped[str] = mapped_column(String(32), default=new_token_key)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)  # every credential answers 401
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)  # after an admin's reset
    last_login: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ApiKey(Base):
    """An API key; only its SHA-256 is stored (keys are random, so a slow hash adds nothing)."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class RevokedLogin(Base):
    """A logged-out login: every access and refresh token carrying its id is refused."""

    __tablename__ = "revoked_logins"

    login_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer, index=True)
    revoked_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
