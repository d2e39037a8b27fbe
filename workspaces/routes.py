"""Workspace routes: create and list, read, rename, delete, and manage members."""
from __future__ import annotations

from flask import Blueprint, Response, jsonify

from api.validation import json_body, responds
from auth.decorators import current_user, login_required
from common.context import audit, services
from workspaces.schemas import (
    MemberEnvelope,
    MemberRequest,
    RoleRequest,
    WorkspaceDetail,
    WorkspaceEnvelope,
    WorkspaceList,
    WorkspaceRequest,
)

bp = Blueprint("workspaces", __name__)
ID = "<string(length=32):workspace_id>"  # other lengths: 404 like any unknown id


@bp.post("/workspaces")
@login_required
@json_body(WorkspaceRequest)
@responds(201, WorkspaceEnvelope, "The new workspace; the caller is its owner")
def create_workspace(payload: WorkspaceRequest) -> tuple[Response, int]:
    """Create a workspace to share documents with a team."""
    workspace = services().workspaces.create(current_user().id, payload.name)
    return jsonify(workspace=workspace.as_dict()), 201


@bp.get("/workspaces")
@login_required
@responds(200, WorkspaceList, "The workspaces the caller belongs to, each with the caller's role")
def list_workspaces() -> Response:
    """The caller's workspaces."""
    return jsonify(workspaces=[workspace.as_dict() for workspace in services().workspaces.of_user(current_user().id)])


@bp.get(f"/workspaces/{ID}")
@login_required
@responds(200, WorkspaceDetail, "The workspace and its members (members only; others get 404)")
def get_workspace(workspace_id: str) -> Response:
    """One workspace with its members."""
    workspace, members = services().workspaces.get(current_user().id, workspace_id)
    return jsonify(workspace=workspace.as_dict(), members=[member.as_dict() for member in members])


@bp.patch(f"/workspaces/{ID}")
@login_required
@json_body(WorkspaceRequest)
@responds(200, WorkspaceEnvelope, "Renamed (owners)")
def rename_workspace(workspace_id: str, payload: WorkspaceRequest) -> Response:
    """Rename a workspace."""
    return jsonify(workspace=services().workspaces.rename(current_user().id, workspace_id, payload.name).as_dict())


@bp.delete(f"/workspaces/{ID}")
@login_required
@responds(204, None, "Deleted with its documents and their chunks (owners)")
def delete_workspace(workspace_id: str) -> tuple[str, int]:
    """Delete a workspace and everything in it."""
    user = current_user()
    name = services().workspaces.delete(user.id, workspace_id)
    audit("workspace.deleted", actor=user.username, target=f"{name} ({workspace_id})")
    return "", 204


@bp.post(f"/workspaces/{ID}/members")
@login_required
@json_body(MemberRequest)
@responds(201, MemberEnvelope, "Added (owners); 404 unknown user; 409 ALREADY_MEMBER")
def add_member(workspace_id: str, payload: MemberRequest) -> tuple[Response, int]:
    """Add a user to the workspace in a role."""
    user = current_user()
    member = services().workspaces.add_member(user.id, workspace_id, payload.username, payload.role)
    audit("member.added", actor=user.username, target=f"{member.username} in {workspace_id}",
          details={"role": member.role})
    return jsonify(member=member.as_dict()), 201


@bp.patch(f"/workspaces/{ID}/members/<username>")
@login_required
@json_body(RoleRequest)
@responds(200, MemberEnvelope, "The member's new role (owners); 409 LAST_OWNER")
def change_member(workspace_id: str, username: str, payload: RoleRequest) -> Response:
    """Change a member's role."""
    user = current_user()
    member, before = services().workspaces.change_role(user.id, workspace_id, username, payload.role)
    audit("member.changed", actor=user.username, target=f"{member.username} in {workspace_id}",
          details={"from": before, "to": member.role})
    return jsonify(member=member.as_dict())


@bp.delete(f"/workspaces/{ID}/members/<username>")
@login_required
@responds(204, None, "Removed (owners), or left (the member itself); 409 LAST_OWNER")
def remove_member(workspace_id: str, username: str) -> tuple[str, int]:
    """Remove a member, or leave the workspace."""
    user = current_user()
    services().workspaces.remove_member(user.id, workspace_id, username)
    audit("member.removed", actor=user.username, target=f"{username.strip().lower()} in {workspace_id}")
    return "", 204
