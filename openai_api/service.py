"""What /v1 does: the model list, chat completions (plain, or over the caller's documents) and embeddings.

Completions run on the same scheduler as the native chat (same queue, limits and timeouts).
With retrieval (`"rag": true`, or a model id ending in `+rag`) the last user message is
answered from the caller's own chunks exactly as /chat/message answers (same prompt assembly,
same delimiting, the no-context answer when nothing relevant is found), statelessly: history
that does not fit its budget is dropped, not summarized. Stop sequences are applied here: the
answer is cut at the first one and the generation cancelled.
"""
from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from answers.policy import NO_CONTEXT
from answers.prompt import SYSTEM_PROMPT, TEMPLATE_TOKENS_PER_MESSAGE
from answers.step import AnswerStep, Grounded, cited
from common.database import utcnow
from common.errors import ValidationFailed
from llm.engine import Prompt
from llm.faithful import StopWatcher
from llm.service import ActiveModel, LLMService
from llm.settings import GenerationOverrides
from llm.streaming import TokenStream
from openai_api.errors import ModelNotServed
from openai_api.schemas import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from rag.embedder import Embedder
from rag.retriever import Source
from rag.spaces import Scope
from sessions.repository import MessageView

RAG_SUFFIX = "+rag"
EMBEDDING_MODEL = "all-minilm-l6-v2"
OWNER = "docchat"


@dataclass
class PreparedCompletion:
    user_id: int  # whose share of the generation queue it takes
    model: str
    messages: Prompt  # raw text for legacy completions
    overrides: GenerationOverrides
    stops: list[str]
    id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    created: int = field(default_factory=lambda: int(time.time()))
    grounded: Grounded | None = None  # with retrieval: the prompt over the sources (None inside: nothing found)
    served: str | None = None  # the models.json id named, when it is not the active model
    question: str = ""  # with retrieval: the question the sources were found for

    @property
    def given(self) -> list[Source]:
        """The sources in the prompt, with their texts."""
        return self.grounded.sources if self.grounded else []

    @property
    def sources(self) -> list[dict[str, Any]] | None:
        """The sources as the response cites them (None without retrieval)."""
        return [cited(source) for source in self.given] if self.grounded else None


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str  # stop or length
    prompt_tokens: int
    completion_tokens: int
    generation: dict[str, Any] | None = None  # settings used, time to first token, decode speed
    grounding: dict[str, Any] | None = None  # with retrieval: each sentence's support by the sources
    answer_kind: str | None = None  # with retrieval: generated or quote (answers/policy.py)


class CompletionService:
    def __init__(self, llm: LLMService, step: AnswerStep, embedder: Callable[[], Embedder]) -> None:
        self._llm = llm
        self._step = step
        self._embedder = embedder
        self._settings = step.settings

    def models(self) -> list[dict[str, Any]]:
        """The active model first, then every other models.json entry (each loads on first use),
        each plain and with retrieval, and the embedding model."""
        active = self._llm.active().id
        ids = [active] + [model_id for model_id in self._llm.manager.ids() if model_id != active]
        created = int(time.time())
        return [{"id": model_id, "object": "model", "created": created, "owned_by": OWNER}
                for model_id in [name for base in ids for name in (base, base + RAG_SUFFIX)] + [EMBEDDING_MODEL]]

    def prepare(self, user_id: int, request: ChatCompletionRequest) -> PreparedCompletion:
        served, rag = self._resolve(request.model)
        model = self._llm.active(served)  # 503 MODEL_NOT_READY with its progress while it loads
        rag = rag or bool(request.rag)
        overrides = GenerationOverrides(num_beams=1, temperature=request.temperature, top_p=request.top_p,
                                        max_new_tokens=request.new_tokens())
        if rag:
            return self._prepare_rag(user_id, request, overrides, model, served)
        messages = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()}
                    for m in request.messages]
        prompt_tokens = sum(model.count_tokens(m["content"]) + TEMPLATE_TOKENS_PER_MESSAGE for m in messages)
        _check_fits(model, prompt_tokens, request.new_tokens() or model.max_new_tokens, "messages")
        return PreparedCompletion(user_id, request.model, messages, overrides, request.stop_sequences(), served=served)

    def prepare_text(self, user_id: int, request: CompletionRequest) -> PreparedCompletion:
        """A legacy completion: the prompt is continued as raw text (no chat template, no retrieval)."""
        served, _ = self._resolve(request.model)
        model = self._llm.active(served)
        if request.model.endswith(RAG_SUFFIX):
            raise ValidationFailed("Retrieval is for chat completions; use /v1/chat/completions",
                                   {"fields": [{"field": "model", "message": "no +rag here", "type": "value_error"}]})
        _check_fits(model, model.count_tokens(request.text()), request.max_tokens, "prompt")
        overrides = GenerationOverrides(num_beams=1, temperature=request.temperature, top_p=request.top_p,
                                        max_new_tokens=request.max_tokens)
        return PreparedCompletion(user_id, request.model, request.text(), overrides, request.stop_sequences(),
                                  id=f"cmpl-{uuid.uuid4().hex}", served=served)

    def complete(self, prepared: PreparedCompletion) -> Completion:
        """The whole answer: the stream, consumed here."""
        return next(value for kind, value in self.stream(prepared) if kind == "end")

    def stream(self, prepared: PreparedCompletion) -> Iterator[tuple[str, Any]]:
        """("content", text) pieces then ("end", Completion); opened once the first token exists."""
        if prepared.grounded is None:
            return self._pieces(prepared, TokenStream.open(partial(self._llm.submit, model=prepared.served),
                                                           prepared.messages, prepared.overrides,
                                                           owner=prepared.user_id))
        if prepared.grounded.prompt is None:
            return iter([("content", self._settings.no_context_reply),
                         ("end", Completion(self._settings.no_context_reply, "stop", 0, 0, answer_kind=NO_CONTEXT))])
        return self._pieces(prepared, self._step.stream(prepared.grounded, owner=prepared.user_id))

    def embed(self, request: EmbeddingRequest) -> dict[str, Any]:
        if request.model != EMBEDDING_MODEL:
            raise ModelNotServed(f"The model '{request.model}' does not exist; embeddings use '{EMBEDDING_MODEL}'")
        embedder = self._embedder()
        texts = request.texts()
        vectors = embedder.embed(texts)
        tokens = sum(embedder.count_tokens(text) for text in texts)
        data = [{"object": "embedding", "index": index,
                 "embedding": base64.b64encode(vector.astype("<f4").tobytes()).decode()
                 if request.encoding_format == "base64" else [float(value) for value in vector]}
                for index, vector in enumerate(vectors)]
        return {"object": "list", "data": data, "model": EMBEDDING_MODEL,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    def _pieces(self, prepared: PreparedCompletion, tokens: TokenStream) -> Iterator[tuple[str, Any]]:
        watcher = StopWatcher(prepared.stops)
        safe = AnswerStep.guard(prepared.given) if prepared.given else None
        released_any = False
        try:
            for piece in tokens:
                released = watcher.feed(piece)
                released = safe.feed(released) if safe and released else released
                if released:
                    released_any = True
                    yield "content", released
                if watcher.stopped:
                    tokens.cancel()
                    break
            tail = watcher.flush()
            tail = (safe.feed(tail) + safe.flush()) if safe else tail
            if tail:
                released_any = True
                yield "content", tail
            result = tokens.outcome()
        finally:
            tokens.cancel()  # a client that left stops costing tokens (a no-op once finished)
        text = watcher.text.strip() if watcher.stopped else result.text
        finish = "stop" if watcher.stopped else _finish(result.finish_reason)
        grounding, kind = None, None
        if prepared.given:  # with documents: cleaned, safe links, or the best passage quoted
            final = self._step.final(prepared.question, text, prepared.given)
            if not released_any and final.text:
                yield "content", final.text
            text, kind, grounding = final.text, final.kind, final.grounding
        yield "end", Completion(text, finish, result.prompt_tokens, result.completion_tokens, result.figures(),
                                grounding, kind)

    def _resolve(self, requested: str) -> tuple[str | None, bool]:
        """(the models.json id to answer with, None for the active model; whether with retrieval)."""
        base, rag = (requested[: -len(RAG_SUFFIX)], True) if requested.endswith(RAG_SUFFIX) else (requested, False)
        active = self._llm.manager.active_id
        if base == active:
            return None, rag
        if not self._llm.manager.knows(base):
            raise ModelNotServed(f"The model '{requested}' does not exist; GET /v1/models lists them "
                                 f"('{active}' answers by default)")
        return base, rag

    def _prepare_rag(self, user_id: int, request: ChatCompletionRequest, overrides: GenerationOverrides,
                     model: ActiveModel, served: str | None) -> PreparedCompletion:
        system = "\n\n".join(m.text() for m in request.messages if m.role in ("system", "developer") and m.text())
        turns = [m for m in request.messages if m.role in ("user", "assistant")]
        last_user = max(index for index, m in enumerate(turns) if m.role == "user" and m.text().strip())
        question = turns[last_user].text()
        history = [MessageView(index, m.role, m.text(), utcnow()) for index, m in enumerate(turns[:last_user])]
        builder = self._step.builder(model, request.new_tokens(), SYSTEM_PROMPT + (f"\n\n{system}" if system else ""))
        if not builder.question_fits(question)[0]:
            raise ValidationFailed("The last user message is too long for retrieval",
                                   {"fields": [{"field": "messages", "message": "too many tokens", "type": "too_long"}]})
        _, recent = builder.split_history(history)  # stateless: what does not fit is dropped
        targets = self._step.targets(user_id, request.scope.scope() if request.scope else Scope(), strict=True)
        grounded = self._step.ground(user_id, targets, builder, question, None, recent, overrides, request.rag_top_k,
                                     model=served)
        messages = grounded.prompt.messages if grounded.prompt else []
        return PreparedCompletion(user_id, request.model, messages, grounded.overrides, request.stop_sequences(),
                                  grounded=grounded, question=question, served=served)


def _check_fits(model: ActiveModel, prompt_tokens: int, answer_tokens: int, field_name: str) -> None:
    """The prompt and the tokens asked for must fit the model's context (OpenAI's context_length_exceeded)."""
    if prompt_tokens + answer_tokens > model.context_length:
        raise ValidationFailed(
            f"This model's maximum context length is {model.context_length} tokens; the {field_name} take about "
            f"{prompt_tokens} and {answer_tokens} are asked for the answer",
            {"fields": [{"field": field_name, "message": "too long", "type": "context_length_exceeded"}]})


def _finish(reason: str) -> str:
    return "length" if reason == "length" else "stop"
