"""/v1 routes: OpenAI's shapes, this server's auth (API key or token as Bearer), limits and scheduler."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, jsonify

from api.errors import stream_error
from api.limits import rate_limited
from api.streaming import DONE, sse_event, sse_response
from api.validation import json_body, responds
from auth.decorators import current_user, login_required
from common.context import services
from openai_api.schemas import ChatCompletionRequest, CompletionRequest, EmbeddingRequest, usage
from openai_api.service import Completion, PreparedCompletion

bp = Blueprint("openai", __name__, url_prefix="/v1")


@bp.get("/models")
@login_required
@responds(200, None, "OpenAI's model list: the active model, the same with retrieval (+rag), the embedding model")
def list_models() -> Response:
    """The models this server answers with now."""
    return jsonify(object="list", data=services().completions.models())


@bp.post("/chat/completions")
@login_required
@rate_limited("chat")
@json_body(ChatCompletionRequest)
@responds(200, None, "A chat.completion (or chat.completion.chunk events with stream: true)")
def chat_completions(payload: ChatCompletionRequest) -> Response:
    """OpenAI's chat completion; with "rag": true or a "+rag" model, answered from the caller's documents."""
    completions = services().completions
    prepared = completions.prepare(current_user().id, payload)
    if payload.stream:
        pieces = completions.stream(prepared)  # failures before the first token: a plain error status
        return sse_response(_chunks(prepared, pieces, payload.include_usage()))
    return jsonify(_completion(prepared, completions.complete(prepared)))


@bp.post("/completions")
@login_required
@rate_limited("chat")
@json_body(CompletionRequest)
@responds(200, None, "A text_completion (or text_completion events with stream: true)")
def completions(payload: CompletionRequest) -> Response:
    """OpenAI's legacy completion: the prompt continued as raw text."""
    service = services().completions
    prepared = service.prepare_text(current_user().id, payload)
    if payload.stream:
        pieces = service.stream(prepared)
        if payload.echo:
            pieces = _echoed(payload.text(), pieces)
        return sse_response(_chunks(prepared, pieces, payload.include_usage(), legacy=True))
    completion = service.complete(prepared)
    text = (payload.text() if payload.echo else "") + completion.text
    return jsonify(id=prepared.id, object="text_completion", created=prepared.created, model=prepared.model,
                   choices=[{"index": 0, "text": text, "logprobs": None, "finish_reason": completion.finish_reason}],
                   usage=usage(completion.prompt_tokens, completion.completion_tokens),
                   generation=completion.generation)


def _echoed(prompt: str, pieces: Iterator[tuple[str, Any]]) -> Iterator[tuple[str, Any]]:
    yield "content", prompt
    yield from pieces


@bp.post("/embeddings")
@login_required
@rate_limited("embeddings")
@json_body(EmbeddingRequest)
@responds(200, None, "OpenAI's embedding list")
def embeddings(payload: EmbeddingRequest) -> Response:
    """Embeddings with the ingestion embedder (all-MiniLM-L6-v2, 384 dimensions, unit length)."""
    return jsonify(services().completions.embed(payload))


def _completion(prepared: PreparedCompletion, completion: Completion) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": prepared.id, "object": "chat.completion", "created": prepared.created, "model": prepared.model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": completion.text},
                     "finish_reason": completion.finish_reason}],
        "usage": usage(completion.prompt_tokens, completion.completion_tokens),
        "generation": completion.generation,  # extension: settings used, ttft_s, decode_tokens_per_s
    }
    if prepared.sources is not None:
        body["sources"] = prepared.sources
        body["grounding"] = completion.grounding  # extension: each sentence's support by the sources
        body["answer_kind"] = completion.answer_kind  # extension: generated or quote
    return body


def _chunks(prepared: PreparedCompletion, pieces: Iterator[tuple[str, Any]], include_usage: bool,
            legacy: bool = False) -> Iterator[str]:
    """OpenAI's stream: chat.completion.chunk (delta) or text_completion (text) events, then [DONE]."""
    kind = "text_completion" if legacy else "chat.completion.chunk"

    def event(choices: list[dict[str, Any]], **extra: Any) -> str:
        body = {"id": prepared.id, "object": kind, "created": prepared.created, "model": prepared.model,
                "choices": choices, **extra}
        return sse_event(body)

    def choice(text: str | None, finish: str | None = None) -> dict[str, Any]:
        if legacy:
            return {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}
        return {"index": 0, "delta": {} if text is None else {"content": text}, "finish_reason": finish}

    if not legacy:
        first = {"sources": prepared.sources} if prepared.sources is not None else {}
        yield event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}], **first)
    try:
        for name, value in pieces:
            if name == "content":
                yield event([choice(value)])
            else:
                last = {"grounding": value.grounding, "answer_kind": value.answer_kind} \
                    if prepared.sources is not None else {}
                yield event([choice(None, value.finish_reason)], generation=value.generation, **last)
                if include_usage:
                    yield event([], usage=usage(value.prompt_tokens, value.completion_tokens))
    except Exception as exc:  # noqa: BLE001 - the status line is gone; the event is the only way to tell
        yield sse_event({"error": stream_error(exc)})
    yield DONE
