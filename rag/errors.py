"""What document handling raises: unknown documents and versions, refused files, quotas, the vector store down."""
from __future__ import annotations

from common.errors import Conflict, DomainError, NotFound, ServiceUnavailable


class VectorStoreUnavailable(ServiceUnavailable):
    """The Chroma server does not answer (stopped, restarting, unreachable)."""


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


class QuotaExceeded(DomainError):
    """The upload would take the user past their storage quota (USER_QUOTA_MB)."""
