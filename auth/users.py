"""User accounts: registration, password login, roles, deletion, the first admin."""
from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from auth.errors import InvalidCredentials, RegistrationClosed, UsernameTaken
from auth.models import ROLE_ADMIN, ROLE_USER, ROLES, ApiKey, User, new_token_key
from auth.passwords import PasswordHasher
from common.database import Database
from common.errors import NotFound, ValidationFailed

BOOTSTRAP_ADMIN_NAME = "admin"


@dataclass(frozen=True)
class UserView:
    """A user as the rest of the program sees it: never the password hash."""

    id: int
    username: str
    role: str
    created_at: datetime
    token_key: str = field(default="", repr=False)  # every token of this account carries it

    @property
    def is_admin(self) -> bool:
        return self.role == ROLE_ADMIN

    @classmethod
    def of(cls, user: User) -> "UserView":
        return cls(id=user.id, username=user.username, role=user.role, created_at=user.created_at,
                   token_key=user.token_key)


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ValidationFailed(f"role must be one of {', '.join(ROLES)}", {"fields": [{"field": "role"}]})


def normalize_username(username: str) -> str:
    """Names are compared case-insensitively: `Alice` and `alice` are one account."""
    return username.strip().lower()


class UserService:
    def __init__(self, db: Database, hasher: PasswordHasher, allow_registration: bool = True,
                 on_delete: Sequence[Callable[[int], None]] = ()) -> None:
        """`on_delete` callbacks get the id of each deleted user, so other packages can remove
        what they keep for that user (files, vectors) without auth importing them."""
        self._db = db
        self._hasher = hasher
        self._allow_registration = allow_registration
        self._on_delete = list(on_delete)

    def register(self, username: str, password: str) -> UserView:
        """Self-service sign-up. Always role `user`: a role in the request is never trusted."""
        if not self._allow_registration:
            raise RegistrationClosed("Registration is closed on this server; ask an admin for an account")
        return self.create(username, password, ROLE_USER)

    def create(self, username: str, password: str, role: str) -> UserView:
        _check_role(role)
        name = normalize_username(username)
        try:
            with self._db.session() as session:
                user = User(username=name, password_hash=self._hasher.hash(password), role=role)
                session.add(user)
                session.flush()
                return UserView.of(user)
        except IntegrityError as exc:
            raise UsernameTaken(f"The username {name!r} is already taken", {"field": "username"}) from exc

    def authenticate(self, username: str, password: str) -> UserView:
        with self._db.session() as session:
            user = session.scalar(select(User).where(User.username == normalize_username(username)))
            if not self._hasher.verify(user.password_hash if user else None, password):
                raise InvalidCredentials("Wrong username or password")
            assert user is not None
            if self._hasher.needs_rehash(user.password_hash):
                user.password_hash = self._hasher.hash(password)
            return UserView.of(user)

    def get(self, user_id: int) -> UserView | None:
        with self._db.session() as session:
            user = session.get(User, user_id)
            return UserView.of(user) if user else None

    def token_owner(self, user_id: int, token_key: str) -> UserView | None:
        """The account a token names, if the token was issued to it: a token of a deleted account
        never names a newer one, and rotating the key (revoke_logins) ends every login."""
        user = self.get(user_id)
        if user is None or not hmac.compare_digest(user.token_key, token_key):
            return None
        return user

    def revoke_logins(self, user_id: int) -> None:
        """End every login of the account at once: each of its tokens stops working."""
        with self._db.session() as session:
            user = session.get(User, user_id)
            if user is None:
                raise NotFound("No such user")
            user.token_key = new_token_key()

    def find(self, username: str) -> UserView:
        with self._db.session() as session:
            return UserView.of(self._by_name(session, username))

    def set_role(self, username: str, role: str) -> UserView:
        _check_role(role)
        with self._db.session() as session:
            user = self._by_name(session, username)
            user.role = role
            return UserView.of(user)

    def delete(self, username: str) -> None:
        """Delete the account, its API keys and (through `on_delete`) its data. Its tokens, browser
        sessions and keys stop working at once: a token names its account's token_key, which goes
        with the row, and ids are never reused."""
        with self._db.session() as session:
            user = self._by_name(session, username)
            user_id = user.id
            session.query(ApiKey).filter(ApiKey.user_id == user_id).delete()
            session.delete(user)
        for callback in self._on_delete:
            callback(user_id)

    def count(self) -> int:
        with self._db.session() as session:
            return session.scalar(select(func.count()).select_from(User)) or 0

    def bootstrap_admin(self) -> str | None:
        """On a fresh install, create `admin` with a random password and return it (else None)."""
        if self.count() > 0:
            return None
        password = secrets.token_urlsafe(18)
        try:
            self.create(BOOTSTRAP_ADMIN_NAME, password, ROLE_ADMIN)
        except UsernameTaken:  # another worker bootstrapped at the same moment
            return None
        return password

    @staticmethod
    def _by_name(session: Session, username: str) -> User:
        user = session.scalar(select(User).where(User.username == normalize_username(username)))
        if user is None:
            raise NotFound(f"No user named {normalize_username(username)!r}")
        return user
