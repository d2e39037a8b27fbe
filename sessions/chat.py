"""A chat turn: retrieve the chunks the caller may read (within the session's scope), fold old history into the summary, build the prompt,
generate (whole or streamed), and store the question with its answer."""
from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from answers.policy import GENERATED, NO_CONTEXT
from answers.prompt import BuiltPrompt, PromptBuilder
from answers.step import AnswerStep, Grounded, cited
from common.errors import ValidationFailed
from ingest.spacy_model import noun_phrases
from llm.engine import GenerationResult
from llm.service import ActiveModel, LLMService
from llm.settings import GenerationOverrides, GenerationSettings
from llm.streaming import TokenStream
from rag.retriever import Source
from rag.spaces import Scope
from sessions.repository import MessageView, NewMessage, SessionRepository, SessionView
from sessions.service import DEFAULT_TITLE, title_from
from sessions.summarizer import Summarizer

log = logging.getLogger(__name__)

KEEPALIVE_S = 1.0  # a streamed answer silent this long writes an SSE comment (see TokenStream.with_silences)
FOLLOW_UP_WORDS = 6  # a question this short is searched together with the previous one
FOLLOW_UP_MAX_WORDS = 20  # and one up to this long that refers back with one of these words:
REFERRING = frozenset({"it", "its", "they", "them", "their", "this", "that", "these", "those", "he", "she", "him",
                       "her", "his", "there", "one", "ones"})


@dataclass
class PreparedTurn:
    """Everything decided before the first byte of the answer: errors up to here are plain JSON."""

    user_id: int
    session: SessionView
    question: str
    grounded: Grounded  # its prompt is None when nothing relevant was found: the no-context reply
    asked_as: str | None = None  # a follow-up's standalone form, searched and asked in its place

    @property
    def prompt(self) -> BuiltPrompt | None:
        return self.grounded.prompt

    @property
    def sources(self) -> list[Source]:
        return self.grounded.sources


@dataclass(frozen=True)
class ChatReply:
    session_id: str
    reply: MessageView
    sources: list[dict[str, Any]]
    usage: dict[str, int]
    generation: dict[str, Any]
    context: dict[str, Any]
    grounding: dict[str, Any] | None = None


class ChatService:
    def __init__(self, repository: SessionRepository, step: AnswerStep, llm: LLMService,
                 summarizer: Summarizer) -> None:
        self._repository = repository
        self._step = step
        self._llm = llm
        self._summarizer = summarizer
        self.settings = step.settings

    def prepare(self, user_id: int, session_id: str, question: str,
                overrides: GenerationOverrides | None = None) -> PreparedTurn:
        """Check, summarize what no longer fits, retrieve and build the prompt (no answer yet)."""
        session = self._repository.get(user_id, session_id)
        model = self._llm.active(session.model)  # 503 while the session's model loads
        builder = self._step.builder(model, overrides.max_new_tokens if overrides else None)
        fits, tokens = builder.question_fits(question)
        if not fits:
            raise ValidationFailed(
                f"The message is too long: {tokens} tokens, at most {builder.budget.question_tokens}",
                {"fields": [{"field": "message", "message": "too many tokens", "type": "too_long"}]})
        session = self._fold_old_history(session, builder, model)
        standalone = self._standalone(session, question)
        targets = self._step.targets(user_id, Scope.of(session.scope), strict=False)  # access may have ended
        # a follow-up is answered from what it found, not from the earlier answers
        history = [] if standalone else session.messages[session.summarized_count:]
        grounded = self._step.ground(user_id, targets, builder, standalone or question, session.summary, history, overrides,
                                     asked_for=question, model=session.model)
        return PreparedTurn(user_id, session, question, grounded, standalone)

    def answer(self, turn: PreparedTurn) -> ChatReply:
        """Generate the whole answer and store the turn."""
        if turn.prompt is None:
            return self.record(turn, self.settings.no_context_reply)
        result = self._step.generate(turn.grounded, owner=turn.user_id)
        return self.record(turn, result.text, result)

    def stream(self, turn: PreparedTurn) -> "TurnStream":
        """Queue the answer and return its events at once, so the sources reach the client while the
        model still works on the first token. What fails on admission (a full queue, the user's
        share, no model) is raised here, a plain JSON error; a later failure is an `error` event."""
        if turn.prompt is None:
            return TurnStream(self, turn, None)
        return TurnStream(self, turn, self._step.stream(turn.grounded, owner=turn.user_id,
                                                        wait_for_first_token=False))

    def record(self, turn: PreparedTurn, text: str, result: GenerationResult | None = None,
               interrupted: tuple[str, GenerationSettings] | None = None) -> ChatReply:
        """Store the question and its answer (or, `interrupted` = (reason, settings), the part received)."""
        sources = [cited(source) for source in turn.sources]
        usage = {"prompt_tokens": result.prompt_tokens if result else 0,
                 "completion_tokens": result.completion_tokens if result else 0}
        settings = result.settings if result else interrupted[1] if interrupted else None
        generation = result.figures() if result else settings.as_dict() if settings else {
            "strategy": "none", "reason": "no relevant context"}
        reason = interrupted[0] if interrupted else result.finish_reason if result else "no_context"
        context: dict[str, object] = turn.prompt.describe() if turn.prompt else {
            "summary_used": False, "history_messages": 0, "sources_given": 0}
        context["asked_as"] = turn.asked_as
        kind, grounding = NO_CONTEXT if turn.prompt is None else GENERATED, None
        # An interrupted answer is stored at once (the client waits for it), unchecked.
        if turn.prompt is not None and not interrupted:
            final = self._step.final(turn.question, text, turn.sources, turn.asked_as)
            text, kind, grounding = final.text, final.kind, final.grounding
        details = {"finish_reason": reason, "usage": usage, "generation": generation, "context": context,
                   "seconds": result.seconds if result else None, "grounding": grounding, "answer_kind": kind}
        stored = self._repository.append(turn.user_id, turn.session.id, [
            NewMessage("user", turn.question),
            NewMessage("assistant", text, sources, details),
        ])
        if turn.session.title == DEFAULT_TITLE and turn.session.message_count == 0:
            self._repository.rename(turn.user_id, turn.session.id, title_from(turn.question))
        return ChatReply(turn.session.id, stored[-1], sources, usage, generation, context, grounding)

    def _fold_old_history(self, session: SessionView, builder: PromptBuilder, model: ActiveModel) -> SessionView:
        """When the unsummarized turns overflow their budget, summarize the oldest and persist it."""
        older, _ = builder.split_history(session.messages[session.summarized_count:])
        if not older:
            return session
        summary = self._summarizer.summarize(session.summary, older, model.count_tokens,
                                             builder.budget.context_window)
        summarized_count = session.summarized_count + len(older)
        self._repository.set_summary(session.key, summary, summarized_count)
        log.info("session %s: summarized %d older messages", session.id, len(older))
        return self._repository.get(session.user_id, session.id)

    @staticmethod
    def _standalone(session: SessionView, question: str) -> str | None:
        """A follow-up ("and the second one?", "why was it closed?") made standalone: the question
        with the subject of the previous question (its noun phrases: "the Orion footbridge"), or
        the whole previous question when it has none; None for a question that stands alone.

        It is both searched and asked in place of the follow-up, without the earlier turns: the
        small model otherwise repeats the previous answer or mixes in what the earlier sources
        said about another subject. Not the previous answer, and not the previous question's
        other words ("who opened"), which would pull the search back to the page that answered
        it (in the manner of a condense-question chat engine, without a model call)."""
        previous = next((m.content for m in reversed(session.messages) if m.role == "user"), "")
        if not previous or not is_follow_up(question):
            return None
        subject = " ".join(noun_phrases(previous))
        return f"{question} (About: {subject or previous})"


def is_follow_up(question: str) -> bool:
    """Short questions, and questions that refer back ("it", "they", "that one") without naming
    their own subject, need the previous turn to be understood."""
    words = re.findall(r"[\w'-]+", question.lower())
    return len(words) < FOLLOW_UP_WORDS or (bool(REFERRING & set(words)) and len(words) < FOLLOW_UP_MAX_WORDS)


class TurnStream:
    """The events of one streamed answer: sources, tokens, then done; the turn is stored at the end.

    A client that goes away closes the generator: the generation is cancelled and the question is
    stored with the part of the answer it received, marked `cancelled`, so the session reads on.
    """

    def __init__(self, chat: ChatService, turn: PreparedTurn, tokens: TokenStream | None) -> None:
        self._chat, self._turn, self._tokens = chat, turn, tokens
        self._sent: list[str] = []

    def events(self) -> Iterator[tuple[str, Any]]:
        yield "sources", [cited(source) for source in self._turn.sources]
        finished, reason = False, "cancelled"
        try:
            if self._tokens is None:
                text = self._chat.settings.no_context_reply
                self._sent.append(text)
                yield "token", {"text": text}
                reply = self._chat.record(self._turn, text)
            else:
                safe = AnswerStep.guard(self._turn.sources)
                for piece in self._tokens.with_silences(KEEPALIVE_S):
                    if piece is None:
                        yield "keepalive", None
                        continue
                    released = safe.feed(piece)
                    if released:
                        self._sent.append(released)
                        yield "token", {"text": released}
                tail = safe.flush()
                if tail:
                    self._sent.append(tail)
                    yield "token", {"text": tail}
                result = self._tokens.outcome()
                reply = self._chat.record(self._turn, result.text, result)
                if not self._sent and reply.reply.content:  # a quote in place of an empty answer
                    yield "token", {"text": reply.reply.content}
            finished = True
            yield "done", reply
        except GeneratorExit:
            raise
        except Exception:
            reason = "error"
            raise
        finally:
            if not finished:
                self._abandon(reason)

    def _abandon(self, reason: str) -> None:
        """The stream ended early (client gone, or an error): stop generating, keep what was said."""
        if self._tokens is None or not self._sent:
            return
        self._tokens.cancel()
        try:
            self._chat.record(self._turn, "".join(self._sent).strip(), interrupted=(reason, self._tokens.settings))
        except Exception:  # noqa: BLE001 - the client is gone; the log is the only place left to tell
            log.exception("could not store the interrupted turn of session %s", self._turn.session.id)
