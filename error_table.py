"""The one table from domain exceptions to HTTP status and error code (API.md).

It imports each package's errors module and nothing else of theirs; create_app() installs it and
api/errors.py looks exceptions up in it."""
from __future__ import annotations

from auth.errors import (
    AccountDisabled,
    CsrfFailed,
    InvalidCredentials,
    LastAdmin,
    PasswordChangeRequired,
    RegistrationClosed,
    TokenExpired,
    TokenInvalid,
    TokenRevoked,
    TooManyAttempts,
    UsernameTaken,
)
from common.errors import (
    Conflict,
    DomainError,
    NotAuthenticated,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    ServiceUnavailable,
    UnsupportedMediaType,
    ValidationFailed,
)
from llm.errors import (
    EngineOverloaded,
    EngineRestarted,
    GenerationTimeout,
    ModelLoadFailed,
    ModelNotReady,
    QueueFull,
    RemoteFailed,
    RemoteUnavailable,
    ShareExceeded,
)
from openai_api.errors import ModelNotServed
from rag.errors import (
    DuplicateContent,
    EmptyDocument,
    LastVersion,
    QuotaExceeded,
    UnprocessableDocument,
    UnsupportedFileType,
    VectorStoreUnavailable,
    VersionNotReady,
)
from workspaces.errors import AlreadyMember, LastOwner, MemberNotFound, RoleTooLow, WorkspaceNotFound

# Domain exception -> (HTTP status, error code). Looked up along the exception's MRO.
ERROR_TABLE: dict[type[DomainError], tuple[int, str]] = {
    ValidationFailed: (400, "VALIDATION_ERROR"),
    NotAuthenticated: (401, "UNAUTHORIZED"),
    InvalidCredentials: (401, "INVALID_CREDENTIALS"),
    TokenInvalid: (401, "INVALID_TOKEN"),
    TokenExpired: (401, "TOKEN_EXPIRED"),
    TokenRevoked: (401, "TOKEN_REVOKED"),
    AccountDisabled: (401, "ACCOUNT_DISABLED"),
    PasswordChangeRequired: (403, "PASSWORD_CHANGE_REQUIRED"),
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
    LastAdmin: (409, "LAST_ADMIN"),
    AlreadyMember: (409, "ALREADY_MEMBER"),
    LastOwner: (409, "LAST_OWNER"),
    WorkspaceNotFound: (404, "NOT_FOUND"),
    MemberNotFound: (404, "NOT_FOUND"),
    RoleTooLow: (403, "FORBIDDEN"),
    VersionNotReady: (409, "VERSION_NOT_READY"),
    LastVersion: (409, "LAST_VERSION"),
    DuplicateContent: (409, "DUPLICATE_CONTENT"),
    ServiceUnavailable: (503, "SERVICE_UNAVAILABLE"),
    QueueFull: (503, "QUEUE_FULL"),
    ShareExceeded: (429, "CONCURRENCY_LIMIT"),
    ModelNotReady: (503, "MODEL_NOT_READY"),
    GenerationTimeout: (503, "GENERATION_TIMEOUT"),
    EngineOverloaded: (503, "GPU_OUT_OF_MEMORY"),
    EngineRestarted: (503, "ENGINE_RESTARTED"),
    ModelLoadFailed: (422, "MODEL_LOAD_FAILED"),
    RemoteUnavailable: (503, "UPSTREAM_UNAVAILABLE"),
    VectorStoreUnavailable: (503, "VECTOR_STORE_UNAVAILABLE"),
    RemoteFailed: (502, "UPSTREAM_ERROR"),
    TooManyAttempts: (429, "RATE_LIMITED"),
}
