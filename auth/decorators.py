"""Who may call what: Bearer authentication (JWT or API key), role checks, the rate-limit key."""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import g, request
from flask_jwt_extended import get_current_user, get_jwt, verify_jwt_in_request
from flask_jwt_extended.exceptions import (
    CSRFError,
    JWTExtendedException,
    NoAuthorizationError,
    RevokedTokenError,
    UserLookupError,
    WrongTokenError,
)
from flask_limiter.util import get_remote_address
from jwt import ExpiredSignatureError, PyJWTError

from api.context import services
from api.validation import document
from auth.api_keys import looks_like_api_key
from auth.users import UserView
from common.errors import (
    CsrfFailed,
    DomainError,
    NotAuthenticated,
    PermissionDenied,
    TokenExpired,
    TokenInvalid,
    TokenRevoked,
)

View = Callable[..., Any]
_CACHE = "_authenticated_user"
ACCESS_COOKIE = "docchat_access"
REFRESH_COOKIE = "docchat_refresh"


def bearer_token() -> str:
    """The token of `Authorization: Bearer <token>`, or NotAuthenticated."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise NotAuthenticated("Authentication required: send Authorization: Bearer <token>")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated("The Authorization header must be 'Bearer <token>'")
    return token.strip()


def authenticate() -> UserView:
    """The user behind the request's access token or API key, loaded fresh from the database."""
    cached = g.get(_CACHE)
    if cached is not None:
        return cached
    if "Authorization" not in request.headers and ACCESS_COOKIE in request.cookies:
        user = _verify_jwt(refresh=False, location="cookies")  # the browser; changes need X-CSRF-TOKEN
        setattr(g, _CACHE, user)
        return user
    token = bearer_token()
    if looks_like_api_key(token):
        user = services().api_keys.user_for(token)
        if user is None:
            raise TokenInvalid("Unknown or deleted API key")
    else:
        user = _verify_jwt(refresh=False)
    setattr(g, _CACHE, user)
    return user


def authenticate_refresh(location: str = "headers") -> tuple[UserView, dict[str, Any]]:
    """The user and claims of a refresh token sent as Bearer (or, for the browser, in its cookie)."""
    if location == "headers":
        bearer_token()
    elif REFRESH_COOKIE not in request.cookies:
        raise NotAuthenticated("Not logged in")
    user = _verify_jwt(refresh=True, location=location)
    return user, get_jwt()


def _verify_jwt(refresh: bool, location: str = "headers") -> UserView:
    """Every way a JWT can fail becomes a 401 with the API's error shape (never a 422)."""
    try:
        verify_jwt_in_request(refresh=refresh, locations=[location])
    except CSRFError as exc:
        raise CsrfFailed("Missing or wrong X-CSRF-TOKEN header (copy it from the docchat_csrf cookie)") from exc
    except ExpiredSignatureError as exc:
        raise TokenExpired("The token has expired; log in again or use your refresh token") from exc
    except RevokedTokenError as exc:
        raise TokenRevoked("The token has been revoked (logged out)") from exc
    except UserLookupError as exc:
        raise TokenInvalid("The account behind this token no longer exists") from exc
    except WrongTokenError as exc:
        wanted = "a refresh" if refresh else "an access"
        raise TokenInvalid(f"Wrong token type: this route needs {wanted} token") from exc
    except NoAuthorizationError as exc:
        raise NotAuthenticated("Authentication required: send Authorization: Bearer <token>") from exc
    except (PyJWTError, JWTExtendedException, ValueError) as exc:
        raise TokenInvalid("The token is invalid") from exc
    return get_current_user()


def login_required(view: View) -> View:
    """Any authenticated user (JWT access token or API key)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        authenticate()
        return view(*args, **kwargs)

    document(wrapper, auth="bearer")
    return wrapper


def admin_required(view: View) -> View:
    """Admins only; the role is read from the database on every request, never from the token."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not authenticate().is_admin:
            raise PermissionDenied("This route is for admins")
        return view(*args, **kwargs)

    document(wrapper, auth="admin")
    return wrapper


def current_user() -> UserView:
    """The caller of a route guarded by login_required or admin_required."""
    return authenticate()


def rate_limit_key() -> str:
    """Authenticated callers are limited per user; others per client address (after ProxyFix)."""
    try:
        return f"user:{authenticate().id}"
    except DomainError:
        return f"addr:{get_remote_address()}"
