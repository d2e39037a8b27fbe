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

from auth.errors import AccountDisabled, InvalidCredentials, LastAdmin, RegistrationClosed, UsernameTaken
from auth.models import ROLE_ADMIN, ROLE_USER, ROLES, ApiKey, User, new_token_key
from auth.passwords import PasswordHasher
from common.database import Database, utcnow
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
    disabled: bool = False
    must_change_password: bool = False
    last_login: datetime | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == ROLE_ADMIN

    @classmethod
    def of(cls, user: User) -> "UserView":
        return cls(id=user.id, username=user.username, role=user.role, created_at=user.created_at,
                   token_key=user.token_key, disabled=user.disabled, must_change_password=user.must_change_password,
                   last_login=user.last_login)


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ValidationFailed(f"role must be one of {', '.join(ROLES)}", {"fields": [{"field": "role"}]})


def normalize_username(username: str) -> str:
    """Names are compared case-insensitively: `Alice` and `alice` are one account."""
    return username.strip().lower()


class UserService:
    def __init__(self, db: Database, hasher: PasswordHasher, allow_registration: bool = True,
                 on_delete: Sequence[Callable[[int], None]] = (),
                 before_delete: Sequence[Callable[[int], None]] = ()) -> None:
        """`on_delete` callbacks get the id of each deleted user, so other packages can remove
        what they keep for that user (files, vectors) without auth importing them;
        `before_delete` ones run while the account still exists (to hand shared things over)."""
        self._db = db
        self._hasher = hasher
        self._allow_registration = allow_registration
        self._on_delete = list(on_delete)
        self._before_delete = list(before_delete)

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
        """The account, with its last login stamped; a disabled one is refused only after its
        password was right, so a guesser learns nothing of the account's state."""
        with self._db.session() as session:
            user = session.scalar(select(User).where(User.username == normalize_username(username)))
            if not self._hasher.verify(user.password_hash if user else None, password):
                raise InvalidCredentials("Wrong username or password")
            assert user is not None
            if user.disabled:
                raise AccountDisabled("This account is disabled; ask an admin")
            if self._hasher.needs_rehash(user.password_hash):
                user.password_hash = self._hasher.hash(password)
            user.last_login = utcnow()
            return UserView.of(user)

    def change_password(self, user_id: int, current: str, new: str) -> UserView:
        """A new password after the current one; every login of the account ends (new token_key),
        and a temporary password set by an admin stops being one."""
        with self._db.session() as session:
            user = session.get(User, user_id)
            if user is None or not self._hasher.verify(user.password_hash, current):
                raise InvalidCredentials("The current password is wrong")
            user.password_hash = self._hasher.hash(new)
            user.must_change_password = False
            user.token_key = new_token_key()
            return UserView.of(user)

    def reset_password(self, user_id: int) -> tuple[UserView, str]:
        """An admin's reset: a random temporary password (returned once), every login ended, and
        the account must change it before anything else."""
        temporary = secrets.token_urlsafe(12)
        with self._db.session() as session:
            user = self._by_id(session, user_id)
            user.password_hash = self._hasher.hash(temporary)
            user.must_change_password = True
            user.token_key = new_token_key()
            return UserView.of(user), temporary

    def update(self, user_id: int, role: str | None = None, disabled: bool | None = None) -> UserView:
        """An admin's change of role or state. Disabling ends every login; the last enabled admin
        can be neither demoted nor disabled (LastAdmin)."""
        if role is not None:
            _check_role(role)
        with self._db.session() as session:
            session.execute(select(User.id).where(User.role == ROLE_ADMIN).with_for_update()).all()  # one at a time
            user = self._by_id(session, user_id)
            losing_admin = user.role == ROLE_ADMIN and not user.disabled and (
                (role is not None and role != ROLE_ADMIN) or disabled is True)
            if losing_admin and not self._other_admins(session, user.id):
                raise LastAdmin("This is the last enabled admin: make another admin first")
            if role is not None:
                user.role = role
            if disabled is not None and disabled != user.disabled:
                user.disabled = disabled
                user.token_key = new_token_key()
            return UserView.of(user)

    def page(self, query: str = "", page: int = 1, per_page: int = 50) -> tuple[list[UserView], int]:
        """Accounts whose name contains `query`, by id; (this page, total matching)."""
        condition = User.username.contains(normalize_username(query), autoescape=True) if query.strip() else None
        conditions = [condition] if condition is not None else []
        with self._db.session() as session:
            total = session.scalar(select(func.count()).select_from(User).where(*conditions)) or 0
            rows = session.scalars(select(User).where(*conditions).order_by(User.id)
                                   .offset((page - 1) * per_page).limit(per_page)).all()
            return [UserView.of(row) for row in rows], total

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
        return self.update(self.find(username).id, role=role)

    def delete(self, username: str) -> None:
        """Delete the account, its API keys and (through `on_delete`) its data. Its tokens, browser
        sessions and keys stop working at once: a token names its account's token_key, which goes
        with the row, and ids are never reused."""
        user_id = self.find(username).id
        for callback in self._before_delete:
            callback(user_id)
        with self._db.session() as session:
            user = self._by_name(session, username)
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
    def _by_id(session: Session, user_id: int) -> User:
        user = session.get(User, user_id)
        if user is None:
            raise NotFound("No such user")
        return user

    @staticmethod
    def _other_admins(session: Session, user_id: int) -> int:
        return session.scalar(select(func.count()).select_from(User).where(
            User.role == ROLE_ADMIN, User.disabled.is_(False), User.id != user_id)) or 0

    @staticmethod
    def _by_name(session: Session, username: str) -> User:
        user = session.scalar(select(User).where(User.username == normalize_username(username)))
        if user is None:
            raise NotFound(f"No user named {normalize_username(username)!r}")
        return user
