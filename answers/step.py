"""The answer step that /chat/message and /v1 (with documents) share, from the question to what the user reads.

retrieve the evidence (contents lists left out) -> build the prompt within the model's budgets ->
generate with the markup stops -> guard the stream (no unsafe link leaves before it is checked) ->
the final policy (cleaned, grounded or quoted). The callers keep only what is theirs: a chat
session's history, summary and storage (sessions/chat.py); a stateless request's messages and its
OpenAI wire format (openai_api/service.py).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

from answers.evidence import NAVIGATION_SPARE, evidence
from answers.policy import AnswerPolicy, FinalAnswer, SafeStream, concise, texts_of
from answers.prompt import SYSTEM_PROMPT, BuiltPrompt, PromptBudget, PromptBuilder, Turn
from llm.engine import GenerationResult
from llm.faithful import MARKUP_STOPS
from llm.service import ActiveModel, LLMService
from llm.settings import GenerationOverrides
from llm.streaming import TokenStream
from rag.retriever import Retriever, Source
from rag.spaces import Scope, Target

NO_CONTEXT_REPLY = (
    "I could not find anything in your documents that answers this, so I will not guess. "
    "Try rephrasing the question, or upload a document that covers it."
)


@dataclass(frozen=True)
class ChatSettings:
    """Retrieval and prompt budgets (the CHAT_* settings; their defaults are in config.py)."""

    top_k: int
    min_score: float
    context_tokens: int
    question_tokens: int
    history_tokens: int
    evidence_tokens: int = 0  # the sources' passages together (0: whole chunks, as many as fit)
    source_tokens: int = 0  # one source's passage
    answer_sentences: int = 0  # an answer's sentences unless the question asks for more (0: no limit)
    no_context_reply: str = NO_CONTEXT_REPLY

    def budget(self, model: ActiveModel, answer_tokens: int | None) -> PromptBudget:
        """The prompt's token budgets for `model`, reserving `answer_tokens` (default: the model's)."""
        return PromptBudget(context_window=min(model.context_length, self.context_tokens),
                            answer_tokens=answer_tokens or model.max_new_tokens,
                            question_tokens=self.question_tokens, history_tokens=self.history_tokens,
                            evidence_tokens=self.evidence_tokens, source_tokens=self.source_tokens)


def cited(source: Source) -> dict[str, Any]:
    """A source as stored with the answer and returned by the API (the chunk's full text left out)."""
    fields = asdict(source)
    fields.pop("text")
    fields["score"] = round(float(source.score), 4)
    return fields


@dataclass(frozen=True)
class Grounded:
    """A question made ready to answer: its prompt (None: nothing relevant was found, the reply is
    the no-context one) and its decoding settings with the answer's sentence limit."""

    prompt: BuiltPrompt | None
    overrides: GenerationOverrides
    model: str | None = None  # a models.json id to answer with (None: the active model)

    @property
    def sources(self) -> list[Source]:
        return self.prompt.cited if self.prompt else []


class AnswerStep:
    def __init__(self, retriever: Retriever, llm: LLMService, policy: AnswerPolicy, settings: ChatSettings) -> None:
        self._retriever = retriever
        self._llm = llm
        self._policy = policy
        self.settings = settings

    def builder(self, model: ActiveModel, answer_tokens: int | None, system: str | None = None) -> PromptBuilder:
        """A prompt builder with this model's budgets (and a system prompt other than the default)."""
        return PromptBuilder(model.count_tokens, self.settings.budget(model, answer_tokens), system or SYSTEM_PROMPT)

    def targets(self, user_id: int, scope: Scope, strict: bool) -> list[Target]:
        """What `user_id` may search within `scope` now (rag.retriever.Retriever.targets)."""
        return self._retriever.targets(user_id, scope, strict)

    def ground(self, user_id: int, targets: list[Target], builder: PromptBuilder, question: str,
               summary: str | None, history: Sequence[Turn], overrides: GenerationOverrides | None,
               top_k: int | None = None, asked_for: str | None = None, model: str | None = None) -> Grounded:
        """Search `targets` for `question` and build its prompt over the evidence found (contents
        lists are not given to the model). `asked_for`, the user's own words where `question` is
        their standalone form, decides whether the question asks for a longer answer."""
        k = top_k or self.settings.top_k
        found = self._retriever.search_in(targets, question, k + NAVIGATION_SPARE, self.settings.min_score, user_id)
        sources = evidence(found, k)
        overrides = concise(asked_for or question, overrides, self.settings.answer_sentences)
        if not sources:
            return Grounded(None, overrides, model)
        return Grounded(builder.build(question, summary, history, sources), overrides, model)

    def generate(self, grounded: Grounded, owner: int) -> GenerationResult:
        """The whole answer of a grounded prompt (not yet through the policy: see `final`)."""
        assert grounded.prompt is not None
        return self._llm.generate(grounded.prompt.messages, grounded.overrides, owner=owner, stops=MARKUP_STOPS,
                                  model=grounded.model)

    def stream(self, grounded: Grounded, owner: int, wait_for_first_token: bool = True) -> TokenStream:
        """The answer's tokens as they come (what fails on admission is raised here)."""
        assert grounded.prompt is not None
        return TokenStream.open(partial(self._llm.submit, model=grounded.model), grounded.prompt.messages,
                                grounded.overrides, owner=owner, wait_for_first_token=wait_for_first_token,
                                stops=MARKUP_STOPS)

    @staticmethod
    def guard(sources: Sequence[Source]) -> SafeStream:
        """Holds back a streamed link or tag until its target is known to be in the sources."""
        return SafeStream(texts_of(sources))

    def final(self, question: str, text: str, sources: Sequence[Source], asked_as: str | None = None) -> FinalAnswer:
        """What the model's text becomes: cleaned, its links made safe, grounded or quoted."""
        return self._policy.final(question, text, list(sources), asked_as)
