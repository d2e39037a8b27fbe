"""Workspaces and their members: who belongs, in which role, decided at every call.

Membership is read from the database on every call, never cached, so a removed member's next
request sees nothing of the workspace. A caller who is not a member gets WorkspaceNotFound (404)
for the workspace and everything in it, exactly like an unknown id; a member whose role is too
low gets RoleTooLow (403).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from auth.models import User
from auth.users import UserService, normalize_username
from common.database import Database
from common.errors import ValidationFailed
from workspaces.errors import AlreadyMember, LastOwner, MemberNotFound, RoleTooLow, WorkspaceNotFound
from workspaces.models import ROLE_OWNER, ROLES, Workspace, WorkspaceMember


@dataclass(frozen=True)
class WorkspaceView:
    id: str
    name: str
    role: str  # the caller's
    created_at: datetime
    members: int

    def as_dict(self) -> dict[str, object]:
        return {"id": self.id, "name": self.name, "role": self.role,
                "created_at": self.created_at.isoformat().replace("+00:00", "Z"), "members": self.members}


@dataclass(frozen=True)
class MemberView:
    username: str
    role: str

    def as_dict(self) -> dict[str, str]:
        return {"username": self.username, "role": self.role}


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ValidationFailed(f"role must be one of {', '.join(ROLES)}", {"fields": [{"field": "role"}]})


def at_least(role: str, needed: str) -> bool:
    return ROLES.index(role) >= ROLES.index(needed)


class WorkspaceService:
    def __init__(self, db: Database, users: UserService) -> None:
        """`users`: where members are found by name (auth owns accounts; this service only links them)."""
        self._db = db
        self._users = users
        self._on_delete: list[Callable[[str], None]] = []

    def on_delete(self, callback: Callable[[str], None]) -> None:
        """`callback` gets the id of each workspace about to be deleted (its documents go first)."""
        self._on_delete.append(callback)

    def create(self, user_id: int, name: str) -> WorkspaceView:
        with self._db.session() as session:
            workspace = Workspace(name=name.strip())
            session.add(workspace)
            session.flush()
            session.add(WorkspaceMember(workspace_id=workspace.id, user_id=user_id, role=ROLE_OWNER))
            session.flush()
            return self._view(session, workspace, ROLE_OWNER)

    def of_user(self, user_id: int) -> list[WorkspaceView]:
        """The workspaces the user belongs to, oldest first, each with the user's role."""
        with self._db.session() as session:
            rows = session.execute(select(Workspace, WorkspaceMember.role)
                                   .join(WorkspaceMember, WorkspaceMember.workspace_id == Workspace.id)
                                   .where(WorkspaceMember.user_id == user_id)
                                   .order_by(Workspace.created_at, Workspace.id)).all()
            return [self._view(session, workspace, role) for workspace, role in rows]

    def workspace_ids(self, user_id: int) -> list[str]:
        """The ids of the workspaces the user belongs to (the spaces they may read besides their own)."""
        with self._db.session() as session:
            return list(session.scalars(select(WorkspaceMember.workspace_id).where(WorkspaceMember.user_id == user_id)
                                        .order_by(WorkspaceMember.added_at, WorkspaceMember.id)))

    def first_owner(self, workspace_id: str) -> int | None:
        """The longest-standing owner's user id (who inherits a leaving member's uploads)."""
        with self._db.session() as session:
            return session.scalar(select(WorkspaceMember.user_id).where(
                WorkspaceMember.workspace_id == workspace_id, WorkspaceMember.role == ROLE_OWNER)
                .order_by(WorkspaceMember.added_at, WorkspaceMember.id).limit(1))

    def role_of(self, user_id: int, workspace_id: str) -> str | None:
        """The user's role in the workspace, None when not a member (or no such workspace)."""
        with self._db.session() as session:
            return session.scalar(select(WorkspaceMember.role).where(WorkspaceMember.workspace_id == workspace_id,
                                                                     WorkspaceMember.user_id == user_id))

    def require(self, user_id: int, workspace_id: str, needed: str) -> str:
        """The caller's role if it is at least `needed`; WorkspaceNotFound for a non-member,
        RoleTooLow for a member below it."""
        role = self.role_of(user_id, workspace_id)
        if role is None:
            raise WorkspaceNotFound("No such workspace")
        if not at_least(role, needed):
            raise RoleTooLow(f"This needs the {needed} role in the workspace; yours is {role}")
        return role

    def get(self, user_id: int, workspace_id: str) -> tuple[WorkspaceView, list[MemberView]]:
        role = self.require(user_id, workspace_id, ROLES[0])
        with self._db.session() as session:
            workspace = session.get(Workspace, workspace_id)
            if workspace is None:
                raise WorkspaceNotFound("No such workspace")
            return self._view(session, workspace, role), self._members(session, workspace_id)

    def rename(self, user_id: int, workspace_id: str, name: str) -> WorkspaceView:
        self.require(user_id, workspace_id, ROLE_OWNER)
        with self._db.session() as session:
            workspace = session.get(Workspace, workspace_id)
            if workspace is None:
                raise WorkspaceNotFound("No such workspace")
            workspace.name = name.strip()
            return self._view(session, workspace, ROLE_OWNER)

    def delete(self, user_id: int, workspace_id: str) -> str:
        """Delete the workspace (owners only); its documents go through `on_delete`. Its name."""
        self.require(user_id, workspace_id, ROLE_OWNER)
        for callback in self._on_delete:
            callback(workspace_id)
        with self._db.session() as session:
            workspace = session.get(Workspace, workspace_id)
            if workspace is None:
                raise WorkspaceNotFound("No such workspace")
            name = workspace.name
            session.query(WorkspaceMember).filter(WorkspaceMember.workspace_id == workspace_id).delete()
            session.delete(workspace)
            return name

    def add_member(self, user_id: int, workspace_id: str, username: str, role: str) -> MemberView:
        self.require(user_id, workspace_id, ROLE_OWNER)
        _check_role(role)
        user = self._users.find(username)
        try:
            with self._db.session() as session:
                session.add(WorkspaceMember(workspace_id=workspace_id, user_id=user.id, role=role))
                session.flush()
                return MemberView(user.username, role)
        except IntegrityError as exc:
            raise AlreadyMember(f"{normalize_username(username)!r} is a member already; change the role instead"
                                ) from exc

    def change_role(self, user_id: int, workspace_id: str, username: str, role: str) -> tuple[MemberView, str]:
        """(the member with the new role, the role before)."""
        self.require(user_id, workspace_id, ROLE_OWNER)
        _check_role(role)
        with self._db.session() as session:
            member = self._member(session, workspace_id, username)
            before = member.role
            if before == ROLE_OWNER and role != ROLE_OWNER:
                self._keep_an_owner(session, workspace_id, member.user_id)
            member.role = role
            return MemberView(normalize_username(username), role), before

    def remove_member(self, user_id: int, workspace_id: str, username: str) -> None:
        """Owners remove anyone; any member may leave. The last owner cannot (LastOwner)."""
        with self._db.session() as session:
            target = self._member_or_none(session, workspace_id, username)
            leaving = target is not None and target.user_id == user_id
        if not leaving:
            self.require(user_id, workspace_id, ROLE_OWNER)
        else:
            self.require(user_id, workspace_id, ROLES[0])
        with self._db.session() as session:
            member = self._member(session, workspace_id, username)
            if member.role == ROLE_OWNER:
                self._keep_an_owner(session, workspace_id, member.user_id)
            session.delete(member)

    def forget_user(self, user_id: int) -> None:
        """After an account is deleted: it leaves its workspaces, and one left without an owner
        passes to its longest-standing member, or goes (with its documents) when nobody is left."""
        with self._db.session() as session:
            session.query(WorkspaceMember).filter(WorkspaceMember.user_id == user_id).delete()  # FKs cascade too
            has_owner = select(WorkspaceMember.id).where(WorkspaceMember.workspace_id == Workspace.id,
                                                         WorkspaceMember.role == ROLE_OWNER).exists()
            orphaned = session.scalars(select(Workspace.id).where(~has_owner)).all()
        for workspace_id in orphaned:
            self._hand_over(workspace_id)

    def _hand_over(self, workspace_id: str) -> None:
        with self._db.session() as session:
            members = session.scalars(select(WorkspaceMember).where(WorkspaceMember.workspace_id == workspace_id)
                                      .order_by(WorkspaceMember.added_at, WorkspaceMember.id)).all()
            if any(member.role == ROLE_OWNER for member in members):
                return
            if members:
                members[0].role = ROLE_OWNER
                return
        for callback in self._on_delete:
            callback(workspace_id)
        with self._db.session() as session:
            workspace = session.get(Workspace, workspace_id)
            if workspace is not None:
                session.delete(workspace)

    @staticmethod
    def _keep_an_owner(session: Session, workspace_id: str, leaving_user_id: int) -> None:
        owners = session.scalars(select(WorkspaceMember.user_id).where(  # locked: two owners leaving at once
            WorkspaceMember.workspace_id == workspace_id, WorkspaceMember.role == ROLE_OWNER).with_for_update()).all()
        if not [owner for owner in owners if owner != leaving_user_id]:
            raise LastOwner("This is the workspace's last owner: make another member owner first")

    def _member_or_none(self, session: Session, workspace_id: str, username: str) -> WorkspaceMember | None:
        return session.scalar(select(WorkspaceMember).join(User, User.id == WorkspaceMember.user_id).where(
            WorkspaceMember.workspace_id == workspace_id, User.username == normalize_username(username)))

    def _member(self, session: Session, workspace_id: str, username: str) -> WorkspaceMember:
        member = self._member_or_none(session, workspace_id, username)
        if member is None:
            raise MemberNotFound(f"{normalize_username(username)!r} is not a member of this workspace")
        return member

    @staticmethod
    def _members(session: Session, workspace_id: str) -> list[MemberView]:
        rows = session.execute(select(User.username, WorkspaceMember.role)
                               .join(User, User.id == WorkspaceMember.user_id)
                               .where(WorkspaceMember.workspace_id == workspace_id)
                               .order_by(WorkspaceMember.added_at, WorkspaceMember.id)).all()
        return [MemberView(username, role) for username, role in rows]

    @staticmethod
    def _view(session: Session, workspace: Workspace, role: str) -> WorkspaceView:
        count = session.scalar(select(func.count()).select_from(WorkspaceMember)
                               .where(WorkspaceMember.workspace_id == workspace.id)) or 0
        return WorkspaceView(workspace.id, workspace.name, role, workspace.created_at, count)
