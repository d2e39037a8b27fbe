"""Generation settings that adapt to the prompt's length, and validated per-request overrides.

| prompt tokens | strategy        | beams | temperature | top_p | top_k | max new tokens | repetition penalty |
| ------------- | --------------- | ----- | ----------- | ----- | ----- | -------------- | ------------------ |
| up to 512     | beam search     | 3     | 0 (none)    | -     | -     | 320            | 1.0 (none)         |
| 513 to 2048   | greedy          | 1     | 0 (none)    | -     | -     | 256            | 1.0 (none)         |
| over 2048     | sampling        | 1     | 0.5         | 0.95  | 50    | 192            | 1.0 (none)         |

No repetition penalty by default: a token penalty changed facts (SmolLM2 writes numbers digit by
digit, so after "Voyager 1 ... September 5," the year's digits counted as repeats and 1977 came
out as 2017). Loops are ended instead: an answer whose last 10 tokens already appeared in it stops
there (llm/faithful.py), on every strategy and both engines. A penalty a request asks for spares
digits, punctuation and the prompt's own tokens.

Chosen by `make bench-answers` (172 FAQ questions, 2026-12-05): up to 512 tokens - every chat
turn with its sources as passages - beam search answered usefully 0.77 of the time against 0.73
greedy and 0.71 sampling (2.5 s per answer against 1.7 and 1.9); at 513-2048 tokens (whole chunks,
`--whole-chunks`) greedy and sampling tied at 0.63 and greedy was faster (3.3 against 3.6 s), so
that row decodes greedily and every answer there is the same twice. Over 2048 tokens (long
histories, /v1 chats) the design's sampling stays, unmeasured by the benchmark, with fewer new
tokens so that time per answer stays bounded. The table sets no sentence limit: an answer from the user's documents
(/chat, and /v1 with documents) is limited to a few sentences by the chat (sessions/chat.py), and
the limit ends the answer where the next sentence would begin (common/text.py), on every engine.
A request may override any field within the bounds of `GenerationOverrides`,
and a model's `generation.max_new_tokens` in models.json caps the table and the overrides alike.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

SHORT_PROMPT_TOKENS = 512
LONG_PROMPT_TOKENS = 2048


@dataclass(frozen=True)
class GenerationSettings:
    strategy: str  # "beam" or "sample"
    num_beams: int
    do_sample: bool
    temperature: float
    top_p: float
    top_k: int
    max_new_tokens: int
    repetition_penalty: float
    prompt_tokens: int = 0
    max_sentences: int = 0  # the answer ends after this many sentences (0: no limit; the chat sets one)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def batch_key(self) -> tuple[Any, ...]:
        """Requests with equal keys can share one batched generate call (max_new_tokens may differ)."""
        return (self.num_beams, self.do_sample, self.temperature, self.top_p, self.top_k,
                self.repetition_penalty)


class GenerationOverrides(BaseModel):
    """What a request may set itself; anything left out comes from the adaptive table."""

    model_config = ConfigDict(extra="forbid")

    num_beams: int | None = Field(default=None, ge=1, le=8)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0, description="0 means no sampling")
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=0, le=500)
    max_new_tokens: int | None = Field(default=None, ge=1, le=2048)
    repetition_penalty: float | None = Field(default=None, ge=1.0, le=2.0)
    max_sentences: int | None = Field(default=None, ge=0, le=100,
                                      description="end the answer after this many sentences; 0 means no limit")


def adaptive_settings(prompt_tokens: int, model_max_new_tokens: int | None = None,
                      overrides: GenerationOverrides | None = None) -> GenerationSettings:
    """The table above for this prompt length, capped by the model, then the request's overrides."""
    if prompt_tokens <= SHORT_PROMPT_TOKENS:
        settings = GenerationSettings("beam", 3, False, 0.0, 1.0, 0, 320, 1.0)
    elif prompt_tokens <= LONG_PROMPT_TOKENS:
        settings = GenerationSettings("greedy", 1, False, 0.0, 1.0, 0, 256, 1.0)
    else:
        settings = GenerationSettings("sample", 1, True, 0.5, 0.95, 50, 192, 1.0)
    settings = replace(settings, prompt_tokens=prompt_tokens)
    if overrides:
        settings = _apply(settings, overrides)
    if model_max_new_tokens:  # the model's own cap holds for overrides too
        settings = replace(settings, max_new_tokens=min(settings.max_new_tokens, model_max_new_tokens))
    return settings


def _apply(settings: GenerationSettings, overrides: GenerationOverrides) -> GenerationSettings:
    chosen = {key: value for key, value in overrides.model_dump().items() if value is not None}
    settings = replace(settings, **chosen)
    if "temperature" in chosen:
        sampling = chosen["temperature"] > 0
        settings = replace(settings, do_sample=sampling)
    beams = settings.num_beams
    strategy = "beam" if beams > 1 and not settings.do_sample else "beam-sample" if beams > 1 else (
        "sample" if settings.do_sample else "greedy")
    return replace(settings, strategy=strategy)
