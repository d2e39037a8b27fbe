"""Document routes: upload, list, read, delete, and search over the caller's own chunks."""
from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from api.context import services
from api.errors import error_response
from api.limits import rate_limited
from api.validation import json_body, openapi, parse_query, responds
from auth.decorators import current_user, login_required
from common.errors import ValidationFailed
from rag.schemas import DocumentEnvelope, DocumentList, DocumentOut, SearchRequest, SearchResults, SourceOut, UploadQuery

bp = Blueprint("documents", __name__)


def _document(document) -> dict:  # type: ignore[no-untyped-def]
    return DocumentOut.of(document).model_dump(mode="json")


@bp.post("/upload")
@login_required
@rate_limited("upload")
@openapi(query=UploadQuery, multipart="file")
@responds(202, DocumentEnvelope, "Queued for ingestion")
@responds(201, DocumentEnvelope, "Ingested (with wait=true)")
@responds(200, DocumentEnvelope, "The same bytes were uploaded before: the existing document")
def upload() -> tuple[Response, int] | Response:
    """Upload a document (multipart field `file`) for ingestion."""
    options = parse_query(UploadQuery)
    upload_file = request.files.get("file")
    if upload_file is None:
        raise ValidationFailed("Send the document as multipart/form-data in the field `file`",
                               {"fields": [{"field": "file", "message": "Field required", "type": "missing"}]})
    svc, user = services(), current_user()
    document, created = svc.documents.upload(user.id, upload_file.filename, upload_file.stream)
    if options.wait:
        document = svc.documents.wait(user.id, document.id, svc.config.upload_wait_timeout_s)
        if document.status == "failed":
            return error_response(422, "UNPROCESSABLE_DOCUMENT", document.error or "The document could not be ingested",
                                  {"document": _document(document)})
    status = 200 if not created else 201 if document.status == "ready" else 202
    return jsonify(document=_document(document)), status


@bp.get("/documents")
@login_required
@responds(200, DocumentList, "The caller's documents, newest first")
def list_documents() -> Response:
    """List the caller's documents."""
    documents = services().documents.list(current_user().id)
    return jsonify(documents=[_document(document) for document in documents])


@bp.get("/documents/<document_id>")
@login_required
@responds(200, DocumentEnvelope, "The document, with its status and progress")
def get_document(document_id: str) -> Response:
    """One of the caller's documents."""
    return jsonify(document=_document(services().documents.get(current_user().id, document_id)))


@bp.delete("/documents/<document_id>")
@login_required
@responds(204, None, "Deleted, with its chunks")
def delete_document(document_id: str) -> tuple[str, int]:
    """Delete one of the caller's documents and its chunks."""
    services().documents.delete(current_user().id, document_id)
    return "", 204


@bp.post("/search")
@login_required
@json_body(SearchRequest)
@responds(200, SearchResults, "The caller's closest chunks, best first")
def search(payload: SearchRequest) -> Response:
    """Semantic search over the caller's own documents."""
    svc = services()
    sources = svc.retriever.search(current_user().id, payload.query, payload.k or svc.config.search_top_k)
    return jsonify(results=[SourceOut.of(source).model_dump(mode="json") for source in sources])
