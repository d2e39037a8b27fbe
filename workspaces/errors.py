"""What workspaces raise: an unknown (or unreadable) workspace, a member twice, the last owner leaving."""
from __future__ import annotations

from common.errors import Conflict, NotFound, PermissionDenied


class WorkspaceNotFound(NotFound):
    """No such workspace, or the caller is not a member: the two look the same from outside."""


class MemberNotFound(NotFound):
    """The workspace has no member of that name."""


class AlreadyMember(Conflict):
    """The user is a member already (change the role instead)."""


class LastOwner(Conflict):
    """The change would leave the workspace without an owner."""


class RoleTooLow(PermissionDenied):
    """A member whose role does not allow this."""
