"""Document routes: upload, list, read, delete, versions, and search over the caller's own chunks."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request
from werkzeug.datastructures import FileStorage

from api.errors import error_response
from api.limits import rate_limited
from api.pagination import PageQuery, paginate
from api.validation import json_body, openapi, parse_query, responds
from auth.decorators import current_user, login_required
from common.context import audit, services
from common.errors import ValidationFailed
from rag.repository import DocumentView
from rag.schemas import (
    DocumentEnvelope,
    DocumentList,
    DocumentListQuery,
    DocumentOut,
    ReplaceQuery,
    SearchRequest,
    SearchResults,
    SourceOut,
    UploadQuery,
    VersionList,
    VersionOut,
)

bp = Blueprint("documents", __name__)


def _document(document: DocumentView) -> dict[str, Any]:
    return DocumentOut.of(document).model_dump(mode="json")


@bp.post("/upload")
@login_required
@rate_limited("upload")
@openapi(query=UploadQuery, multipart="file")
@responds(202, DocumentEnvelope, "Queued for ingestion (a new document, or a new version of the one with this name)")
@responds(201, DocumentEnvelope, "Ingested (with wait=true)")
@responds(200, DocumentEnvelope, "The same bytes were uploaded before: the existing document")
def upload() -> tuple[Response, int] | Response:
    """Upload a document (multipart field `file`) for ingestion into your own space, or with
    `workspace` into a workspace where you are an editor or owner (a viewer gets 403); new content
    under the name of one of the space's documents becomes its new version."""
    options = parse_query(UploadQuery)
    upload_file = _file_field()
    svc, user = services(), current_user()
    document, created = svc.documents.upload(user.id, upload_file.filename, upload_file.stream,
                                             new_document=options.new_document, workspace_id=options.workspace)
    return _accepted(document, created, options.wait)


@bp.put("/documents/<document_id>")
@login_required
@rate_limited("upload")
@openapi(query=ReplaceQuery, multipart="file")
@responds(202, DocumentEnvelope, "The file is queued as the document's new version")
@responds(201, DocumentEnvelope, "The new version is ingested (with wait=true)")
@responds(200, DocumentEnvelope, "The bytes are the current version (unchanged) or an older one (restored)")
def replace_document(document_id: str) -> tuple[Response, int] | Response:
    """Upload a new version of one of your documents (multipart field `file`)."""
    options = parse_query(ReplaceQuery)
    upload_file = _file_field()
    svc, user = services(), current_user()
    document, created = svc.documents.replace(user.id, document_id, upload_file.filename, upload_file.stream)
    return _accepted(document, created, options.wait)


def _file_field() -> FileStorage:
    upload_file = request.files.get("file")
    if upload_file is None:
        raise ValidationFailed("Send the document as multipart/form-data in the field `file`",
                               {"fields": [{"field": "file", "message": "Field required", "type": "missing"}]})
    return upload_file


def _accepted(document: DocumentView, created: bool, wait: bool) -> tuple[Response, int] | Response:
    svc, user = services(), current_user()
    if wait:
        document = svc.documents.wait(user.id, document.family_id, svc.config.upload_wait_timeout_s)
        if document.status == "failed":
            return error_response(422, "UNPROCESSABLE_DOCUMENT", document.error or "The document could not be ingested",
                                  {"document": _document(document)})
    status = 200 if not created else 201 if document.status == "ready" else 202
    return jsonify(document=_document(document)), status


@bp.get("/documents")
@login_required
@openapi(query=DocumentListQuery)
@responds(200, DocumentList, "The caller's documents (or a workspace's), newest first, a page at a time")
def list_documents() -> Response:
    """List the caller's own documents, or with `workspace` (any member) that workspace's."""
    query = parse_query(DocumentListQuery)
    page = paginate(services().documents.listed(current_user().id, query.workspace),
                    lambda document: (document.created_at.timestamp(), document.family_id), query,
                    descending=True)
    return jsonify(documents=[_document(document) for document in page.items], next_cursor=page.next_cursor)


@bp.get("/documents/<document_id>")
@login_required
@responds(200, DocumentEnvelope, "The document, with its status and progress")
def get_document(document_id: str) -> Response:
    """One of the caller's documents."""
    return jsonify(document=_document(services().documents.get(current_user().id, document_id)))


@bp.delete("/documents/<document_id>")
@login_required
@responds(204, None, "Deleted, every version with its chunks")
def delete_document(document_id: str) -> tuple[str, int]:
    """Delete one of the caller's documents (all its versions) and its chunks."""
    user = current_user()
    document = services().documents.delete(user.id, document_id)
    audit("document.deleted", actor=user.username, target=f"{document.filename} ({document_id})",
          details={"workspace_id": document.workspace_id} if document.workspace_id else None)
    return "", 204


@bp.get("/documents/<document_id>/versions")
@login_required
@openapi(query=PageQuery)
@responds(200, VersionList, "The document and its versions, newest first, a page at a time")
def list_versions(document_id: str) -> Response:
    """The versions of one of the caller's documents."""
    svc, user = services(), current_user()
    page = paginate(svc.documents.versions(user.id, document_id), lambda version: (version.version,),
                    parse_query(PageQuery), descending=True)
    return jsonify(document=_document(svc.documents.get(user.id, document_id)),
                   versions=[VersionOut.of(version).model_dump(mode="json") for version in page.items],
                   next_cursor=page.next_cursor)


@bp.post("/documents/<document_id>/versions/<int:version>/restore")
@login_required
@responds(200, DocumentEnvelope, "That version is current again (no re-embedding)")
def restore_version(document_id: str, version: int) -> Response:
    """Make an older, ready version the current one; 409 VERSION_NOT_READY otherwise."""
    return jsonify(document=_document(services().documents.restore(current_user().id, document_id, version)))


@bp.delete("/documents/<document_id>/versions/<int:version>")
@login_required
@responds(200, DocumentEnvelope, "Deleted with its chunks; the document as it remains")
def delete_version(document_id: str, version: int) -> Response:
    """Delete one version; 409 LAST_VERSION for a document's only version."""
    return jsonify(document=_document(services().documents.delete_version(current_user().id, document_id, version)))


@bp.post("/search")
@login_required
@json_body(SearchRequest)
@responds(200, SearchResults, "The caller's closest chunks, best first")
def search(payload: SearchRequest) -> Response:
    """Semantic search over every document the caller can read (their own and their workspaces')."""
    svc = services()
    sources = svc.retriever.search(current_user().id, payload.query, payload.k or svc.config.search_top_k)
    return jsonify(results=[SourceOut.of(source).model_dump(mode="json") for source in sources])
