"""JWT issuing and the flask-jwt-extended callbacks: users loaded fresh, revoked logins refused."""
from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from flask import Flask
from flask_jwt_extended import JWTManager, create_access_token, create_refresh_token

from auth.users import UserView
from common.context import services
from common.database import utcnow

LOGIN_CLAIM = "lid"  # every token of one login carries the same id; logout revokes that id
ACCOUNT_CLAIM = "uk"  # the account's token_key: tokens never name an account they were not issued to


def init_jwt(app: Flask) -> JWTManager:
    jwt = JWTManager(app)

    @jwt.user_lookup_loader
    def load_user(_header: dict[str, Any], payload: dict[str, Any]) -> UserView | None:
        try:
            return services().users.token_owner(int(payload["sub"]), str(payload[ACCOUNT_CLAIM]))
        except (KeyError, TypeError, ValueError):
            return None

    @jwt.token_in_blocklist_loader
    def is_revoked(_header: dict[str, Any], payload: dict[str, Any]) -> bool:
        login_id = payload.get(LOGIN_CLAIM)
        return not isinstance(login_id, str) or services().revocations.is_revoked(login_id)

    return jwt


def issue_login_tokens(user: UserView, access_ttl: timedelta) -> dict[str, Any]:
    """An access and a refresh token for a fresh login."""
    claims = {LOGIN_CLAIM: uuid.uuid4().hex, ACCOUNT_CLAIM: user.token_key}
    return {
        "access_token": create_access_token(identity=str(user.id), additional_claims=claims),
        "refresh_token": create_refresh_token(identity=str(user.id), additional_claims=claims),
        "token_type": "Bearer",
        "expires_in": int(access_ttl.total_seconds()),
    }


def issue_access_token(user: UserView, refresh_claims: dict[str, Any], access_ttl: timedelta) -> dict[str, Any]:
    """A new access token of the same login as the refresh token it came from."""
    claims = {LOGIN_CLAIM: refresh_claims[LOGIN_CLAIM], ACCOUNT_CLAIM: user.token_key}
    token = create_access_token(identity=str(user.id), additional_claims=claims)
    return {"access_token": token, "expires_in": int(access_ttl.total_seconds())}


def revoke_login(claims: dict[str, Any], refresh_ttl: timedelta) -> None:
    """Refuse every token of this login from now on, until its refresh token would expire anyway."""
    services().revocations.revoke(claims[LOGIN_CLAIM], int(claims["sub"]), utcnow() + refresh_ttl)
