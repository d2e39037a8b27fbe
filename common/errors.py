"""Domain exceptions. Domain code raises these; app.py maps each to an HTTP status and code once."""
from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every error a client may be told about. `message` is a human sentence."""

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class ValidationFailed(DomainError):
    """A request body or parameter failed validation; details name the fields."""


class UnsupportedMediaType(DomainError):
    """A request body that is not of the media type the route takes (JSON routes: application/json)."""


class NotAuthenticated(DomainError):
    """No credentials, or credentials that prove nothing."""


class InvalidCredentials(NotAuthenticated):
    """Wrong username or password."""


class TokenInvalid(NotAuthenticated):
    """A token that is forged, malformed, of the wrong type or for a user who is gone."""


class TokenExpired(NotAuthenticated):
    """A token past its expiry."""


class TokenRevoked(NotAuthenticated):
    """A token of a login that logged out."""


class PermissionDenied(DomainError):
    """Authenticated, but not allowed to do this."""


class RegistrationClosed(PermissionDenied):
    """This server does not accept new accounts."""


class CsrfFailed(PermissionDenied):
    """A cookie-authenticated change without the matching X-CSRF-TOKEN header."""


class TooManyAttempts(DomainError):
    """Too many failed sign-ins from this address (the login limit also bounds HTTP Basic guesses)."""

    def __init__(self, message: str, retry_after_s: int = 60) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class NotFound(DomainError):
    """Unknown, or owned by somebody else (the two must look the same)."""


class Conflict(DomainError):
    """The request clashes with what exists."""


class UsernameTaken(Conflict):
    """Another account already has this name."""


class ServiceUnavailable(DomainError):
    """A dependency (database, rate-limit storage, model) cannot serve right now."""

    def __init__(self, message: str, retry_after_s: int = 5, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details)
        self.retry_after_s = retry_after_s


class DocumentNotFound(NotFound):
    """No such document for this user."""


class VersionNotReady(Conflict):
    """Only a ready version (one whose chunks exist) can be restored."""


class LastVersion(Conflict):
    """A document's only version cannot be deleted on its own: delete the document."""


class DuplicateContent(Conflict):
    """The uploaded bytes are already another of the user's documents."""


class UnsupportedFileType(DomainError):
    """The file is of no supported type, or its content contradicts its name."""


class UnprocessableDocument(DomainError):
    """Well-formed request, but the document is empty, corrupt, hostile or has no text."""


class EmptyDocument(UnprocessableDocument):
    """The file has no bytes, or nothing but white space."""


class PayloadTooLarge(DomainError):
    """A request body over the route's size limit."""


class QuotaExceeded(DomainError):
    """The upload would take the user past their storage quota (USER_QUOTA_MB)."""


class SessionNotFound(NotFound):
    """No such chat session for this user."""
