"""Request and response schemas of the chat routes (validation and OpenAPI both use them)."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from llm.settings import GenerationOverrides
from rag.schemas import ScopeIn, SourceOut
from sessions.chat import ChatReply
from sessions.repository import MessageView, SessionView

SESSION_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
MESSAGE_CHARS = 20_000


def _not_blank(value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise ValueError("must contain some text")
    return value


class StartRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str | None = Field(default=None, max_length=MESSAGE_CHARS, description="A first message to answer at once")
    sessionId: str | None = Field(default=None, pattern=SESSION_ID_PATTERN,
                                  description="Your own id for the session; if you already have it, it is resumed (200)")
    title: str | None = Field(default=None, min_length=1, max_length=200)
    generation: GenerationOverrides | None = None
    scope: ScopeIn | None = Field(default=None, description="What the session searches: `workspaces` (ids, or "
                                  "\"personal\" for your own space) and single `documents`; left out: everything "
                                  "you can read. Anything you cannot read is 404")
    model: str | None = Field(default=None, min_length=1, max_length=200,
                              description="Extension: a models.json id (GET /models) that answers this session "
                              "instead of the active model; loaded on first use (503 MODEL_NOT_READY with its "
                              "progress meanwhile); an unknown id is 404")

    _check_message = field_validator("message", "title")(_not_blank)


class MessageRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sessionId: str = Field(pattern=SESSION_ID_PATTERN)
    message: str = Field(min_length=1, max_length=MESSAGE_CHARS)
    stream: bool = Field(default=False, description="Answer as Server-Sent Events (also with Accept: text/event-stream)")
    generation: GenerationOverrides | None = Field(default=None, description="Override the adaptive settings")

    _check_message = field_validator("message")(_not_blank)


class RenameRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=200)

    _check_title = field_validator("title")(_not_blank)


class BranchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: int = Field(ge=0, description="Message index: the new session holds the messages before it")


class ExportQuery(BaseModel):
    format: Literal["json", "markdown", "md"] = "json"


GROUNDING = ("Assistant turns with sources: `threshold`, `supported_share`, `unsupported` (how many sentences), and "
             "per sentence `text`, `start`, `end`, `supported` (null: too short to judge), `score`, `source` (1-based "
             "index into `sources`), `document_id`, `page`")


ANSWER_KIND = ("Assistant turns: `generated` (the model's answer, cleaned of prompt markup, its links and images "
               "kept only when their target is in the sources), `quote` (the model's answer was empty, echoed its "
               "prompt, had fewer than half of its claims backed by the sources, did not address the question, was "
               "mostly questions, or wrote an exact fact - number, version, path, option, name, code - that neither "
               "the sources nor the question hold: the passage of the sources that best matches the question, quoted "
               "with its citation) or `no_context` (nothing relevant was found)")


class MessageOut(BaseModel):
    index: int
    role: str = Field(description="user or assistant")
    content: str
    timestamp: datetime = Field(description="ISO 8601, UTC")
    sources: list[SourceOut] | None = Field(default=None, description="Assistant turns: the chunks it was given")
    finish_reason: str | None = Field(default=None, description="Assistant turns: stop, length, no_context, "
                                      "cancelled (the client left mid-stream) or error")
    grounding: dict[str, Any] | None = Field(default=None, description=GROUNDING)
    answer_kind: str | None = Field(default=None, description=ANSWER_KIND)

    @classmethod
    def of(cls, message: MessageView) -> "MessageOut":
        details = message.details or {}
        return cls(index=message.position, role=message.role, content=message.content, timestamp=message.created_at,
                   sources=sources_out(message.sources) if message.role == "assistant" else None,
                   finish_reason=details.get("finish_reason"), grounding=details.get("grounding"),
                   answer_kind=details.get("answer_kind") if message.role == "assistant" else None)


def sources_out(stored: list[dict[str, Any]] | None) -> list[SourceOut] | None:
    """Sources as stored with an answer (dicts), as the API shows them."""
    return None if stored is None else [SourceOut.model_validate(source) for source in stored]


class SessionSummaryOut(BaseModel):
    sessionId: str
    title: str
    created_at: datetime
    last_active: datetime
    message_count: int
    expires_at: datetime | None = Field(description="When the retention policy deletes it if idle; null: never")


class SessionOut(BaseModel):
    sessionId: str
    title: str
    messages: list[MessageOut]
    summary: str | None = Field(description="Rolling summary of older turns, used in prompts in their place")
    summarized_messages: int = Field(description="How many of the first messages the summary covers")
    branched_from: str | None
    created_at: datetime
    last_active: datetime
    scope: dict[str, list[str]] | None = Field(default=None, description="What the session searches "
                                               "(`workspaces`, `documents`); null: everything you can read")
    model: str | None = Field(default=None, description="The model it answers with; null: the active model")
    next_cursor: str | None = Field(default=None, description="GET /chat/sessions/<id>: pass as `cursor` for the "
                                    "next page of messages; null on the last page")

    @classmethod
    def of(cls, session: SessionView, messages: list[MessageView] | None = None) -> "SessionOut":
        """The session with all its messages, or with `messages` (a page of them)."""
        shown = session.messages if messages is None else messages
        return cls(sessionId=session.id, title=session.title, messages=[MessageOut.of(m) for m in shown],
                   summary=session.summary, summarized_messages=session.summarized_count,
                   branched_from=session.branched_from, created_at=session.created_at,
                   last_active=session.last_active, scope=session.scope, model=session.model)


class SessionList(BaseModel):
    sessions: list[SessionSummaryOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")


class StartResult(BaseModel):
    sessionId: str
    title: str
    scope: dict[str, list[str]] | None = Field(default=None, description="What the session searches; null: "
                                               "everything you can read")
    model: str | None = Field(default=None, description="The model it answers with; null: the active model")
    messages: list[MessageOut]
    sources: list[SourceOut] = Field(description="Sources of the first reply (empty without a message)")


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int


class ReplyOut(BaseModel):
    sessionId: str
    reply: MessageOut
    sources: list[SourceOut] = Field(description="The chunks given to the model, in the order it saw them")
    usage: Usage
    generation: dict[str, Any] = Field(description="The generation settings used (adaptive table, overrides), "
                                       "with `ttft_s` (submission to first token) and `decode_tokens_per_s`")
    context: dict[str, Any] = Field(description="What went into the prompt: summary used, history and sources; "
                                    "`asked_as`, the standalone question a follow-up was searched and asked as")
    grounding: dict[str, Any] | None = Field(default=None, description=GROUNDING)

    @classmethod
    def of(cls, reply: ChatReply) -> "ReplyOut":
        return cls(sessionId=reply.session_id, reply=MessageOut.of(reply.reply), sources=sources_out(reply.sources) or [],
                   usage=Usage.model_validate(reply.usage), generation=reply.generation, context=reply.context,
                   grounding=reply.grounding)


class BranchResult(BaseModel):
    sessionId: str
    title: str
    branched_from: str
    messages: list[MessageOut]


class SessionAnalytics(BaseModel):
    sessionId: str
    messages: dict[str, int] = Field(description="user and assistant message counts")
    average_length_chars: dict[str, float | None]
    response_seconds: dict[str, float | None] = Field(description="generation time of the answers (average, max)")
    retrieval_hit_rate: float | None = Field(description="share of answers that found relevant context")
    top_documents: list[dict[str, Any]] = Field(description="the files cited most, with their citation counts")
    top_keywords: list[str]
    sentiment: list[dict[str, float]] = Field(description="VADER compound score (-1 to 1) of each user message")
