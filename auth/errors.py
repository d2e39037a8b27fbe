"""What authentication raises: bad credentials, bad or revoked tokens, closed registration, throttled logins."""
from __future__ import annotations

from common.errors import Conflict, DomainError, NotAuthenticated, PermissionDenied


class InvalidCredentials(NotAuthenticated):
    """Wrong username or password."""


class TokenInvalid(NotAuthenticated):
    """A token that is forged, malformed, of the wrong type or for a user who is gone."""


class TokenExpired(NotAuthenticated):
    """A token past its expiry."""


class TokenRevoked(NotAuthenticated):
    """A token of a login that logged out."""


class RegistrationClosed(PermissionDenied):
    """This server does not accept new accounts."""


class CsrfFailed(PermissionDenied):
    """A cookie-authenticated change without the matching X-CSRF-TOKEN header."""


class UsernameTaken(Conflict):
    """Another account already has this name."""


class TooManyAttempts(DomainError):
    """Too many failed sign-ins from this address (the login limit also bounds HTTP Basic guesses)."""

    def __init__(self, message: str, retry_after_s: int = 60) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class AccountDisabled(NotAuthenticated):
    """The account is disabled: every credential of it is refused."""


class PasswordChangeRequired(PermissionDenied):
    """An admin reset the password: the account may only change it (and read /auth/me, log out)."""


class LastAdmin(Conflict):
    """The change would leave the server without an enabled admin."""
