"""The one table from domain exceptions to HTTP status and error code (API.md), and its lookup."""
from __future__ import annotations

from common.errors import (
    Conflict,
    CsrfFailed,
    DomainError,
    DuplicateContent,
    EmptyDocument,
    InvalidCredentials,
    LastVersion,
    NotAuthenticated,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    QuotaExceeded,
    RegistrationClosed,
    ServiceUnavailable,
    TokenExpired,
    TokenInvalid,
    TokenRevoked,
    TooManyAttempts,
    UnprocessableDocument,
    UnsupportedFileType,
    UnsupportedMediaType,
    UsernameTaken,
    ValidationFailed,
    VersionNotReady,
)
from llm.engine import EngineOverloaded
from llm.manager import ModelLoadFailed
from llm.remote import RemoteFailed, RemoteUnavailable
from llm.scheduler import GenerationTimeout, ModelNotReady, QueueFull, ShareExceeded
from openai_api.service import ModelNotServed
from rag.vector_store import VectorStoreUnavailable

# Domain exception -> (HTTP status, error code). Looked up along the exception's MRO.
ERROR_TABLE: dict[type[DomainError], tuple[int, str]] = {
    ValidationFailed: (400, "VALIDATION_ERROR"),
    NotAuthenticated: (401, "UNAUTHORIZED"),
    InvalidCredentials: (401, "INVALID_CREDENTIALS"),
    TokenInvalid: (401, "INVALID_TOKEN"),
    TokenExpired: (401, "TOKEN_EXPIRED"),
    TokenRevoked: (401, "TOKEN_REVOKED"),
    PermissionDenied: (403, "FORBIDDEN"),
    RegistrationClosed: (403, "REGISTRATION_CLOSED"),
    CsrfFailed: (403, "CSRF_FAILED"),
    NotFound: (404, "NOT_FOUND"),
    ModelNotServed: (404, "MODEL_NOT_FOUND"),
    UnsupportedFileType: (415, "UNSUPPORTED_FILE_TYPE"),
    UnsupportedMediaType: (415, "UNSUPPORTED_MEDIA_TYPE"),
    QuotaExceeded: (413, "QUOTA_EXCEEDED"),
    PayloadTooLarge: (413, "PAYLOAD_TOO_LARGE"),
    UnprocessableDocument: (422, "UNPROCESSABLE_DOCUMENT"),
    EmptyDocument: (422, "EMPTY_DOCUMENT"),
    Conflict: (409, "CONFLICT"),
    UsernameTaken: (409, "USERNAME_TAKEN"),
    VersionNotReady: (409, "VERSION_NOT_READY"),
    LastVersion: (409, "LAST_VERSION"),
    DuplicateContent: (409, "DUPLICATE_CONTENT"),
    ServiceUnavailable: (503, "SERVICE_UNAVAILABLE"),
    QueueFull: (503, "QUEUE_FULL"),
    ShareExceeded: (429, "CONCURRENCY_LIMIT"),
    ModelNotReady: (503, "MODEL_NOT_READY"),
    GenerationTimeout: (503, "GENERATION_TIMEOUT"),
    EngineOverloaded: (503, "GPU_OUT_OF_MEMORY"),
    ModelLoadFailed: (422, "MODEL_LOAD_FAILED"),
    RemoteUnavailable: (503, "UPSTREAM_UNAVAILABLE"),
    VectorStoreUnavailable: (503, "VECTOR_STORE_UNAVAILABLE"),
    RemoteFailed: (502, "UPSTREAM_ERROR"),
    TooManyAttempts: (429, "RATE_LIMITED"),
}

# Errors Flask or an extension raises itself -> code.
HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "UNPROCESSABLE",
    429: "RATE_LIMITED",
    503: "SERVICE_UNAVAILABLE",
}



def status_and_code(exc: DomainError) -> tuple[int, str]:
    """The HTTP status and error code of a domain exception, looked up along its class's MRO."""
    for klass in type(exc).__mro__:
        if klass in ERROR_TABLE:
            return ERROR_TABLE[klass]
    return 500, "INTERNAL_ERROR"
