"""Admin routes for accounts: list and search, change a role, disable, reset a password."""
from __future__ import annotations

from flask import Blueprint, Response, jsonify

from api.validation import json_body, openapi, parse_query, responds
from auth.decorators import admin_required, current_user
from auth.schemas import (
    AdminUserEnvelope,
    AdminUserList,
    AdminUserOut,
    AdminUserPatch,
    AdminUsersQuery,
    TemporaryPassword,
)
from auth.users import UserView
from common.context import audit, services

bp = Blueprint("admin_users", __name__)
ID = "<int(max=9223372036854775807):user_id>"  # larger: 404, not a database overflow


def user_out(user: UserView) -> dict:
    return AdminUserOut(id=user.id, username=user.username, role=user.role, disabled=user.disabled,
                        created_at=user.created_at, last_login=user.last_login).model_dump(mode="json")


@bp.get("/admin/users")
@admin_required
@openapi(query=AdminUsersQuery)
@responds(200, AdminUserList, "Accounts by id, a page at a time, with the total")
def list_users() -> Response:
    """List and search accounts (admins only)."""
    query = parse_query(AdminUsersQuery)
    users, total = services().users.page(query.q, query.page, query.per_page)
    return jsonify(users=[user_out(user) for user in users], total=total)


@bp.patch(f"/admin/users/{ID}")
@admin_required
@json_body(AdminUserPatch)
@responds(200, AdminUserEnvelope, "The changed account; 409 LAST_ADMIN for the last enabled admin")
def update_user(user_id: int, payload: AdminUserPatch) -> Response:
    """Change an account's role, or disable (every login ends) or enable it."""
    before = services().users.get(user_id)
    user = services().users.update(user_id, role=payload.role, disabled=payload.disabled)
    actor = current_user().username
    if before is not None and before.role != user.role:
        audit("user.role_changed", actor=actor, target=user.username, details={"from": before.role, "to": user.role})
    if before is not None and before.disabled != user.disabled:
        audit("user.disabled" if user.disabled else "user.enabled", actor=actor, target=user.username)
    return jsonify(user=user_out(user))


@bp.post(f"/admin/users/{ID}/password")
@admin_required
@responds(200, TemporaryPassword, "A temporary password, shown this once")
def reset_password(user_id: int) -> Response:
    """Give an account a temporary password: its logins end, and it must change the password next."""
    user, temporary = services().users.reset_password(user_id)
    audit("password.reset", actor=current_user().username, target=user.username)
    return jsonify(temporary_password=temporary)
