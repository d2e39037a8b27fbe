"""Where documents live and who may reach them: a user's personal space, or a shared workspace.

Each space has its own vector collections and upload folder (isolation by construction: a query
opens only the collections of the spaces the caller may read, never a shared one filtered after).
Who may read or write a workspace is asked of the workspaces service at the moment of each call,
through the `SpaceAccess` protocol, so a removed member's next request sees nothing of it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from common.errors import NotFound

READ = "viewer"  # the workspace role that may ask, search and read
WRITE = "editor"  # the role that may also upload, replace, restore and delete
PERSONAL = "personal"  # in a chat scope's `workspaces`: the caller's own space


@dataclass(frozen=True)
class Space:
    """A personal space (`owner_id`) or a workspace (`workspace_id`)."""

    owner_id: int | None = None
    workspace_id: str | None = None

    @classmethod
    def personal(cls, user_id: int) -> "Space":
        return cls(owner_id=user_id)

    @classmethod
    def workspace(cls, workspace_id: str) -> "Space":
        return cls(workspace_id=workspace_id)

    @classmethod
    def of(cls, user_id: int, workspace_id: str | None) -> "Space":
        """The space of a document row: its workspace, or else its uploader's personal space."""
        return cls.workspace(workspace_id) if workspace_id else cls.personal(user_id)

    @classmethod
    def from_key(cls, key: str) -> "Space":
        """The space of a `key` (u<user id> or w<workspace id>), as backups name their files."""
        return cls.workspace(key[1:]) if key.startswith("w") else cls.personal(int(key[1:]))

    @property
    def key(self) -> str:
        """The vector collections' name part: u<user id> or w<workspace id>."""
        return f"w{self.workspace_id}" if self.workspace_id else f"u{self.owner_id}"

    @property
    def folder(self) -> str:
        """The upload folder's name: the user id (as before workspaces), or w<workspace id>."""
        return f"w{self.workspace_id}" if self.workspace_id else str(self.owner_id)


class SpaceAccess(Protocol):
    """Workspace membership, read at the moment of the call (the workspaces service)."""

    def require(self, user_id: int, workspace_id: str, needed: str) -> str:
        """The caller's role if at least `needed`; a NotFound for a non-member, a
        PermissionDenied for a member whose role is too low."""

    def workspace_ids(self, user_id: int) -> list[str]:
        """The workspaces the user belongs to."""


@dataclass(frozen=True)
class Scope:
    """What a chat session may search: whole spaces and single documents (family ids). Empty:
    everything the caller can read at the moment of each question."""

    workspaces: tuple[str, ...] = ()
    documents: tuple[str, ...] = ()

    @property
    def everything(self) -> bool:
        return not self.workspaces and not self.documents

    def as_dict(self) -> dict[str, list[str]] | None:
        """As stored with a session (None: everything)."""
        return None if self.everything else {"workspaces": list(self.workspaces), "documents": list(self.documents)}

    @classmethod
    def of(cls, stored: dict[str, list[str]] | None) -> "Scope":
        return cls(tuple(stored.get("workspaces") or ()), tuple(stored.get("documents") or ())) if stored else cls()


@dataclass(frozen=True)
class Target:
    """One space a search opens; `documents`: only these version ids in it (None: all of it)."""

    space: Space
    documents: frozenset[str] | None = None


class Spaces:
    """Turns a caller (and a scope) into the spaces they may read or write right now."""

    def __init__(self, access: SpaceAccess) -> None:
        self._access = access

    def readable(self, user_id: int) -> list[Space]:
        """The caller's personal space, then each workspace they belong to."""
        return [Space.personal(user_id), *(Space.workspace(w) for w in self._access.workspace_ids(user_id))]

    def for_upload(self, user_id: int, workspace_id: str | None) -> Space:
        """Where an upload goes: the caller's own space, or a workspace they may edit."""
        if workspace_id is None:
            return Space.personal(user_id)
        self._access.require(user_id, workspace_id, WRITE)
        return Space.workspace(workspace_id)

    def for_listing(self, user_id: int, workspace_id: str | None) -> Space:
        if workspace_id is None:
            return Space.personal(user_id)
        self._access.require(user_id, workspace_id, READ)
        return Space.workspace(workspace_id)

    def check(self, user_id: int, space: Space, needed: str, missing: NotFound) -> None:
        """`missing` (a 404) unless the caller may read `space`; a PermissionDenied when they may
        read it but `needed` is more than their role allows."""
        if space.workspace_id is None:
            if space.owner_id != user_id:
                raise missing
            return
        try:
            self._access.require(user_id, space.workspace_id, READ)
        except NotFound:
            raise missing from None
        if needed != READ:
            self._access.require(user_id, space.workspace_id, needed)

    def can_read(self, user_id: int, space: Space) -> bool:
        try:
            self.check(user_id, space, READ, NotFound("No such space"))
        except NotFound:
            return False
        return True

    def scoped(self, user_id: int, scope: Scope, strict: bool) -> tuple[list[Space], list[str]]:
        """The whole spaces and the document ids a scope names, of those the caller may read now.
        With `strict` (a new scope), naming any workspace the caller cannot read is a 404;
        otherwise (a later question) it is left out: membership may have ended since."""
        if scope.everything:
            return self.readable(user_id), []
        readable = {space.workspace_id or PERSONAL: space for space in self.readable(user_id)}
        unknown = [name for name in scope.workspaces if name not in readable]
        if unknown and strict:
            raise NotFound(f"No such workspace: {unknown[0]}", {"workspace_id": unknown[0]})
        return [readable[name] for name in scope.workspaces if name in readable], list(scope.documents)

