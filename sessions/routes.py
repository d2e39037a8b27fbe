"""Chat routes: start, message (JSON or Server-Sent Events), and the caller's sessions."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, jsonify, request

from api.errors import stream_error
from api.limits import rate_limited
from api.pagination import PageQuery, paginate
from api.streaming import sse_event, sse_response
from api.validation import json_body, openapi, parse_query, responds
from auth.decorators import current_user, login_required
from common.context import services
from sessions.analytics import analyze
from sessions.chat import TurnStream
from sessions.export import to_markdown
from sessions.schemas import (
    BranchRequest,
    BranchResult,
    ExportQuery,
    MessageOut,
    MessageRequest,
    RenameRequest,
    ReplyOut,
    SessionAnalytics,
    SessionList,
    SessionOut,
    SessionSummaryOut,
    StartRequest,
    StartResult,
    sources_out,
)

bp = Blueprint("chat", __name__)


@bp.post("/chat/start")
@login_required
@rate_limited("chat")
@json_body(StartRequest)
@responds(201, StartResult, "A new session; with `message`, its first reply is in `messages`")
@responds(200, StartResult, "`sessionId` named a session of yours: resumed")
def start(payload: StartRequest) -> tuple[Response, int]:
    """Start a chat session, optionally answering a first message."""
    svc, user = services(), current_user()
    session, created = svc.sessions.start(user.id, payload.title, payload.sessionId,
                                          payload.scope.scope() if payload.scope else None, payload.model)
    sources: list[dict[str, Any]] = []
    if payload.message:
        try:
            sources = svc.chat.answer(svc.chat.prepare(user.id, session.id, payload.message, payload.generation)).sources
        except Exception:
            if created:  # a failed start leaves no empty session behind
                svc.sessions.delete(user.id, session.id)
            raise
    session = svc.sessions.get(user.id, session.id)
    body = StartResult(sessionId=session.id, title=session.title, scope=session.scope, model=session.model,
                       sources=sources_out(sources) or [],
                       messages=[MessageOut.of(message) for message in session.messages])
    return jsonify(body.model_dump(mode="json")), 201 if created else 200


@bp.post("/chat/message")
@login_required
@rate_limited("chat")
@json_body(MessageRequest)
@responds(200, ReplyOut, "The answer with its sources; as SSE: sources, token..., done (this object) or error")
@openapi(also_media={200: "text/event-stream"})
def message(payload: MessageRequest) -> Response:
    """Ask a question in a session; the answer is grounded in the caller's documents."""
    svc, user = services(), current_user()
    turn = svc.chat.prepare(user.id, payload.sessionId, payload.message, payload.generation)
    if payload.stream or request.accept_mimetypes.best == "text/event-stream":
        stream = svc.chat.stream(turn)  # a full queue is still a plain JSON 503 here
        return sse_response(_sse(stream))
    return jsonify(ReplyOut.of(svc.chat.answer(turn)).model_dump(mode="json"))


def _sse(stream: TurnStream) -> Iterator[str]:
    """The stream's events as SSE; an error after the first byte becomes an `error` event."""
    try:
        for name, data in stream.events():
            if name == "keepalive":
                yield ": keepalive\n\n"  # an SSE comment: clients ignore it; a gone client fails the write
                continue
            yield sse_event(ReplyOut.of(data).model_dump(mode="json") if name == "done" else data, name)
    except Exception as exc:  # noqa: BLE001 - the status line is gone; the event is the only way to tell
        yield sse_event(stream_error(exc), "error")


@bp.get("/chat/sessions")
@login_required
@openapi(query=PageQuery)
@responds(200, SessionList, "The caller's sessions, most recently active first, a page at a time")
def list_sessions() -> Response:
    """List the caller's chat sessions."""
    svc = services()
    page = paginate(svc.sessions.of_user(current_user().id), lambda s: (s.last_active.timestamp(), s.id),
                    parse_query(PageQuery), descending=True)
    return jsonify(sessions=[SessionSummaryOut(
        sessionId=s.id, title=s.title, created_at=s.created_at, last_active=s.last_active,
        message_count=s.message_count, expires_at=svc.sessions.expires_at(s)).model_dump(mode="json")
        for s in page.items], next_cursor=page.next_cursor)


@bp.get("/chat/sessions/<session_id>")
@login_required
@openapi(query=PageQuery)
@responds(200, SessionOut, "The session with its messages (summarized ones too), oldest first, a page at a time")
def get_session(session_id: str) -> Response:
    """One of the caller's sessions."""
    session = services().sessions.get(current_user().id, session_id)
    page = paginate(session.messages, lambda message: (message.position,), parse_query(PageQuery))
    body = SessionOut.of(session, page.items).model_copy(update={"next_cursor": page.next_cursor})
    return jsonify(body.model_dump(mode="json"))


@bp.patch("/chat/sessions/<session_id>")
@login_required
@json_body(RenameRequest)
@responds(200, SessionOut, "Renamed")
def rename_session(session_id: str, payload: RenameRequest) -> Response:
    """Give a session a new title."""
    session = services().sessions.rename(current_user().id, session_id, payload.title.strip())
    return jsonify(SessionOut.of(session).model_dump(mode="json"))


@bp.delete("/chat/sessions/<session_id>")
@login_required
@responds(204, None, "Deleted with its messages")
def delete_session(session_id: str) -> tuple[str, int]:
    """Delete one of the caller's sessions."""
    services().sessions.delete(current_user().id, session_id)
    return "", 204


@bp.post("/chat/sessions/<session_id>/branch")
@login_required
@json_body(BranchRequest)
@responds(201, BranchResult, "A new session holding the messages before `at`")
def branch_session(session_id: str, payload: BranchRequest) -> tuple[Response, int]:
    """Branch a conversation at a message index."""
    branch = services().sessions.branch(current_user().id, session_id, payload.at)
    body = BranchResult(sessionId=branch.id, title=branch.title, branched_from=session_id,
                        messages=[MessageOut.of(message) for message in branch.messages])
    return jsonify(body.model_dump(mode="json")), 201


@bp.get("/chat/sessions/<session_id>/analytics")
@login_required
@responds(200, SessionAnalytics, "Counts, lengths, response times, hit rate, documents, keywords, sentiment")
def session_analytics(session_id: str) -> Response:
    """Conversation analysis of one of the caller's sessions."""
    return jsonify(analyze(services().sessions.get(current_user().id, session_id)))


@bp.get("/chat/sessions/<session_id>/export")
@login_required
@responds(200, SessionOut, "The session as JSON, or as Markdown with format=markdown")
@openapi(query=ExportQuery, also_media={200: "text/markdown"})
def export_session(session_id: str) -> Response:
    """Download a session as JSON or Markdown."""
    options = parse_query(ExportQuery)
    session = services().sessions.get(current_user().id, session_id)
    if options.format == "json":
        response = jsonify(SessionOut.of(session).model_dump(mode="json"))
        extension = "json"
    else:
        response = Response(to_markdown(session), mimetype="text/markdown")
        extension = "md"
    response.headers["Content-Disposition"] = f'attachment; filename="chat-{session.id}.{extension}"'
    return response
