"""Auth routes: register, login, refresh, logout, me, API keys."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Blueprint, Response, jsonify, request
from flask_jwt_extended import get_jwt, set_access_cookies, set_refresh_cookies, unset_jwt_cookies

from api.limits import rate_limited
from api.pagination import PageQuery, paginate
from api.validation import json_body, openapi, parse_query, responds
from auth.api_keys import looks_like_api_key
from auth.decorators import (
    ACCESS_COOKIE,
    authenticate,
    authenticate_refresh,
    bearer_token,
    current_user,
    login_required,
    sign_in,
)
from auth.schemas import (
    AccessToken,
    ApiKeyCreated,
    ApiKeyList,
    ApiKeyOut,
    ApiKeyRequest,
    LoginRequest,
    Message,
    PasswordChanged,
    PasswordChangeRequest,
    RegisterRequest,
    TokenPair,
    UserEnvelope,
    UserOut,
)
from auth.tokens import issue_access_token, issue_login_tokens, revoke_login
from auth.users import UserView
from common.context import audit, services
from common.errors import ValidationFailed

bp = Blueprint("auth", __name__)


def _access_ttl() -> timedelta:
    return timedelta(minutes=services().config.access_token_minutes)


def _user_out(user: UserView) -> dict[str, Any]:
    return UserOut(id=user.id, username=user.username, role=user.role,
                   must_change_password=user.must_change_password).model_dump()


@bp.post("/auth/register")
@rate_limited("register")
@json_body(RegisterRequest)
@responds(201, UserEnvelope, "The new account (role user)")
def register(payload: RegisterRequest) -> tuple[Response, int]:
    """Create an account with role `user`."""
    user = services().users.register(payload.username, payload.password)
    return jsonify(user=_user_out(user)), 201


@bp.post("/auth/login")
@bp.post("/login")
@rate_limited("login")
@json_body(LoginRequest)
@responds(200, TokenPair, "Access and refresh tokens")
def login(payload: LoginRequest) -> Response:
    """Exchange a username and password for tokens."""
    user = sign_in(payload.username, payload.password, audited=True)
    return jsonify(issue_login_tokens(user, _access_ttl()))


@bp.post("/auth/refresh")
@rate_limited("refresh")
@openapi(auth="refresh")
@responds(200, AccessToken, "A new access token")
def refresh() -> Response:
    """Exchange a refresh token (as Bearer) for a new access token."""
    user, claims = authenticate_refresh()
    return jsonify(issue_access_token(user, claims, _access_ttl()))


@bp.post("/auth/logout")
@openapi(auth="bearer")
@responds(200, Message, "Logged out")
def logout() -> Response:
    """Revoke the access token and every token of the same login (its refresh token too)."""
    if looks_like_api_key(bearer_token()):
        raise ValidationFailed("API keys do not log out; delete the key with DELETE /auth/api-keys/<id>")
    authenticate()
    revoke_login(get_jwt(), timedelta(days=services().config.refresh_token_days))
    return jsonify(message="Logged out")


@bp.post("/auth/password")
@login_required
@rate_limited("login")
@json_body(PasswordChangeRequest)
@responds(200, PasswordChanged, "Changed; every other login of the account has ended")
def change_password(payload: PasswordChangeRequest) -> Response:
    """Change the caller's password (also a temporary one an admin set). Every login of the
    account ends; the caller's own goes on with new tokens (in the body for a token, as new
    cookies for a browser). API keys are not logins and keep working."""
    user = services().users.change_password(current_user().id, payload.current_password, payload.new_password)
    audit("password.changed", actor=user.username, target=user.username)
    browser = "Authorization" not in request.headers and ACCESS_COOKIE in request.cookies
    bearer = request.headers.get("Authorization", "").lower().startswith("bearer ")
    tokens = issue_login_tokens(user, _access_ttl()) if browser or (bearer and not looks_like_api_key(
        bearer_token())) else None
    body = PasswordChanged(message="Password changed", access_token=None, refresh_token=None, expires_in=None)
    if tokens and not browser:
        body = PasswordChanged(message="Password changed", access_token=tokens["access_token"],
                               refresh_token=tokens["refresh_token"], expires_in=tokens["expires_in"])
    response = jsonify(body.model_dump())
    if tokens and browser:
        _set_login_cookies(response, tokens)
    return response


@bp.get("/auth/me")
@login_required
@responds(200, UserOut, "The caller's account")
def me() -> Response:
    """Who the token belongs to."""
    return jsonify(_user_out(current_user()))


@bp.post("/auth/api-keys")
@login_required
@rate_limited("api_keys")
@json_body(ApiKeyRequest)
@responds(201, ApiKeyCreated, "The new key, shown this once")
def create_api_key(payload: ApiKeyRequest) -> tuple[Response, int]:
    """Create an API key for the caller."""
    user = current_user()
    key, plain = services().api_keys.create(user.id, payload.name)
    audit("api_key.created", actor=user.username, target=f"{key.name} ({key.prefix}…)")
    return jsonify(ApiKeyCreated(id=key.id, name=key.name, key=plain).model_dump()), 201


@bp.get("/auth/api-keys")
@login_required
@openapi(query=PageQuery)
@responds(200, ApiKeyList, "The caller's keys (without the keys themselves), oldest first, a page at a time")
def list_api_keys() -> Response:
    """List the caller's API keys."""
    page = paginate(services().api_keys.list(current_user().id), lambda key: (key.id,), parse_query(PageQuery))
    return jsonify(api_keys=[ApiKeyOut.model_validate(key, from_attributes=True).model_dump(mode="json")
                             for key in page.items], next_cursor=page.next_cursor)


@bp.delete("/auth/api-keys/<int(max=9223372036854775807):key_id>")  # larger: 404, not a database overflow
@login_required
@responds(204, None, "Deleted")
def delete_api_key(key_id: int) -> tuple[str, int]:
    """Delete one of the caller's API keys; it stops working at once."""
    user = current_user()
    services().api_keys.delete(user.id, key_id)
    audit("api_key.revoked", actor=user.username, target=str(key_id))
    return "", 204


# --- the browser: the same logins, kept in HttpOnly cookies with double-submit CSRF protection ---

@bp.post("/auth/session")
@rate_limited("login")
@json_body(LoginRequest)
@responds(200, UserEnvelope, "Logged in; tokens set as HttpOnly cookies, a CSRF token in docchat_csrf")
def browser_login(payload: LoginRequest) -> Response:
    """Log in the browser: no token is readable by page scripts."""
    user = sign_in(payload.username, payload.password, audited=True)
    response = jsonify(user=_user_out(user))
    _set_login_cookies(response, issue_login_tokens(user, _access_ttl()))
    return response


def _set_login_cookies(response: Response, tokens: dict[str, Any]) -> None:
    set_access_cookies(response, tokens["access_token"], max_age=int(_access_ttl().total_seconds()))
    set_refresh_cookies(response, tokens["refresh_token"],
                        max_age=int(timedelta(days=services().config.refresh_token_days).total_seconds()))


@bp.post("/auth/session/refresh")
@rate_limited("refresh")
@responds(200, UserEnvelope, "A new access cookie")
def browser_refresh() -> Response:
    """Renew the browser's access cookie from its refresh cookie (send X-CSRF-TOKEN from docchat_refresh_csrf)."""
    user, claims = authenticate_refresh(location="cookies")
    response = jsonify(user=_user_out(user))
    set_access_cookies(response, issue_access_token(user, claims, _access_ttl())["access_token"],
                       max_age=int(_access_ttl().total_seconds()))
    return response


@bp.delete("/auth/session")
@responds(200, Message, "Logged out; the login is revoked and the cookies cleared")
def browser_logout() -> Response:
    """Log the browser out: revoke its login and clear its cookies."""
    if "Authorization" in request.headers:
        raise ValidationFailed("This logs out a browser; API clients use POST /auth/logout")
    authenticate()
    revoke_login(get_jwt(), timedelta(days=services().config.refresh_token_days))
    response = jsonify(message="Logged out")
    unset_jwt_cookies(response)
    return response
