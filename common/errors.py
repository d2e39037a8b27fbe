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










class PermissionDenied(DomainError):
    """Authenticated, but not allowed to do this."""








class NotFound(DomainError):
    """Unknown, or owned by somebody else (the two must look the same)."""


class Conflict(DomainError):
    """The request clashes with what exists."""




class ServiceUnavailable(DomainError):
    """A dependency (database, rate-limit storage, model) cannot serve right now."""

    def __init__(self, message: str, retry_after_s: int = 5, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details)
        self.retry_after_s = retry_after_s
















class PayloadTooLarge(DomainError):
    """A request body over the route's size limit."""




