"""Who may call what: Bearer authentication (JWT or API key), role checks, the rate-limit key."""
from __future__ import annotations

import base64
import functools
import time
from collections.abc import Callable
from typing import Any

from flask import current_app, request
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

from api.validation import document
from auth.api_keys import looks_like_api_key
from auth.errors import (
    AccountDisabled,
    CsrfFailed,
    InvalidCredentials,
    PasswordChangeRequired,
    TokenExpired,
    TokenInvalid,
    TokenRevoked,
    TooManyAttempts,
)
from auth.users import UserView, normalize_username
from common.context import LIMITER_KEY, audit, services
from common.errors import DomainError, NotAuthenticated, PermissionDenied

View = Callable[..., Any]
# Kept in the request's own environ, never in `g`: an app context (and its `g`) can outlive one
# request and be shared by the next (a streamed answer still open, a test client), and an identity
# must never carry over from one request to another.
_CACHE = "docchat.authenticated_user"
_FAILED = "docchat.basic_auth_failure"
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
    """The user behind the request's access token, API key, cookie or Basic credentials, loaded
    fresh from the database; a disabled account is refused whichever credential it sends."""
    cached = request.environ.get(_CACHE)
    if cached is not None:
        return cached
    user = _credential_owner()
    if user.disabled:
        raise AccountDisabled("This account is disabled; ask an admin")
    request.environ[_CACHE] = user
    return user


def _credential_owner() -> UserView:
    if "Authorization" not in request.headers and ACCESS_COOKIE in request.cookies:
        return _verify_jwt(refresh=False, location="cookies")  # the browser; changes need X-CSRF-TOKEN
    if request.headers.get("Authorization", "").lower().startswith("basic "):
        failed = request.environ.get(_FAILED)
        if failed is not None:  # the rate limiter's key function asked already: count a guess once
            raise failed
        try:
            return _basic_user()
        except DomainError as exc:
            request.environ[_FAILED] = exc
            raise
    token = bearer_token()
    if looks_like_api_key(token):
        keyed = services().api_keys.user_for(token)
        if keyed is None:
            raise TokenInvalid("Unknown or deleted API key")
        return keyed
    return _verify_jwt(refresh=False)


def _basic_user() -> UserView:
    """HTTP Basic: username with password or API key. Each try counts against the same per
    account and address budget as POST /auth/login (sign_in), and failures also against the
    address's login limit, so Basic is no way around either."""
    try:
        decoded = base64.b64decode(request.headers["Authorization"][6:].strip(), validate=True).decode()
        username, secret = decoded.split(":", 1)
    except (ValueError, UnicodeDecodeError) as exc:
        raise NotAuthenticated("Malformed Basic credentials: send base64(username:password)") from exc
    _refuse_when_locked_out()
    try:
        return sign_in(username, secret, api_key_allowed=True)
    except InvalidCredentials:
        _count_failure()
        raise InvalidCredentials("Wrong username, password or API key") from None


def sign_in(username: str, secret: str, api_key_allowed: bool = False, audited: bool = False) -> UserView:
    """Every sign-in with a password (POST /auth/login, /login, /auth/session, HTTP Basic).

    One counter per account and client address, shared by all these paths, is taken BEFORE the
    password hash is computed, so parallel guesses cannot all slip in while the slow hash runs:
    past the login limit (RATELIMIT_LOGIN) the answer is 429 without a hash. A success clears the
    counter (only someone who knows the password can), so a script that signs in often with the
    right password is never locked out. Failures go to the audit log; successes too when
    `audited` (the login routes: HTTP Basic signs in on every request)."""
    strategy, limit, address = _login_limit()
    account = normalize_username(username)[:64]
    if not strategy.hit(limit, "sign-in", account, address):
        reset = strategy.get_window_stats(limit, "sign-in", account, address).reset_time
        raise TooManyAttempts(f"Too many sign-in attempts for this account from this address ({limit}); wait and retry",
                              retry_after_s=max(1, int(reset - time.time()) + 1))
    try:
        user = _check_secret(account, username, secret, api_key_allowed)
    except (InvalidCredentials, AccountDisabled) as exc:
        audit("login.failed", actor=account, details={"reason": type(exc).__name__})
        raise
    strategy.clear(limit, "sign-in", account, address)
    if audited:
        audit("login.succeeded", actor=user.username)
    return user


def _check_secret(account: str, username: str, secret: str, api_key_allowed: bool) -> UserView:
    svc = services()
    if api_key_allowed and looks_like_api_key(secret):
        user = svc.api_keys.user_for(secret)
        if user is None or user.username != account:
            raise InvalidCredentials("Wrong username or API key")
        return user
    return svc.users.authenticate(username, secret)


def _login_limit() -> tuple[Any, Any, str]:
    from limits import parse

    limiter = current_app.extensions[LIMITER_KEY]
    return limiter.limiter, parse(current_app.config["RATE_LIMITS"]["login"]), get_remote_address()


def _refuse_when_locked_out() -> None:
    strategy, limit, address = _login_limit()
    if not strategy.test(limit, "basic-auth-failures", address):
        raise TooManyAttempts(f"Too many failed sign-ins from this address ({limit}); wait and retry",
                              retry_after_s=int(limit.get_expiry()))


def _count_failure() -> None:
    strategy, limit, address = _login_limit()
    strategy.hit(limit, "basic-auth-failures", address)


def authenticate_refresh(location: str = "headers") -> tuple[UserView, dict[str, Any]]:
    """The user and claims of a refresh token sent as Bearer (or, for the browser, in its cookie)."""
    if location == "headers":
        bearer_token()
    elif REFRESH_COOKIE not in request.cookies:
        raise NotAuthenticated("Not logged in")
    user = _verify_jwt(refresh=True, location=location)
    if user.disabled:
        raise AccountDisabled("This account is disabled; ask an admin")
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


# What an account whose password an admin reset may still do: change it, see itself, log out.
PASSWORD_CHANGE_ENDPOINTS = frozenset({"auth.change_password", "auth.me", "auth.logout", "auth.browser_logout"})


def _allowed(user: UserView) -> UserView:
    if user.must_change_password and request.endpoint not in PASSWORD_CHANGE_ENDPOINTS:
        raise PasswordChangeRequired("Change the temporary password first (POST /auth/password)")
    return user


def login_required(view: View) -> View:
    """Any authenticated user (JWT access token or API key)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _allowed(authenticate())
        return view(*args, **kwargs)

    document(wrapper, auth="bearer")
    return wrapper


def admin_required(view: View) -> View:
    """Admins only; the role is read from the database on every request, never from the token."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not _allowed(authenticate()).is_admin:
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
