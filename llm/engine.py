"""The transformers engine: chat template, batched generation with per-request streaming and stops."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from common.errors import ServiceUnavailable
from llm.registry import ModelSpec
from llm.settings import GenerationSettings

log = logging.getLogger(__name__)


class EngineOverloaded(ServiceUnavailable):
    """The device ran out of memory even with smaller settings."""


Chat = list[dict[str, str]]
Prompt = Chat | str  # a chat (the model's chat template applies) or raw text to continue (legacy completions)


@dataclass(frozen=True)
class EncodedPrompt:
    """A chat as the engine will run it: token ids (none for a remote model) and their count."""

    ids: list[int]
    tokens: int


@dataclass
class GenerationRequest:
    """One prompt in flight. `on_token` receives text pieces as they are decoded (not in beam mode)."""

    messages: Prompt
    settings: GenerationSettings
    prompt: EncodedPrompt
    engine: "Engine"  # the one that encoded the prompt runs it, even across a swap
    on_token: Callable[[str], None] | None = None
    deadline: float = float("inf")
    cancelled: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class GenerationResult:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # stop, length, cancelled, timeout
    settings: GenerationSettings
    seconds: float


class Engine(Protocol):
    """What the scheduler and the manager need of a backend (transformers here, or a remote server)."""

    spec: ModelSpec
    device: str

    def encode(self, messages: Prompt) -> EncodedPrompt: ...

    def count_tokens(self, text: str) -> int: ...

    def generate(self, batch: list[GenerationRequest]) -> list[GenerationResult | Exception]:
        """One result per request, in order; an exception in a slot fails that request alone."""
        ...


class TransformersEngine:
    """Owns one loaded model. Not thread-safe by design: the scheduler is its only caller."""

    def __init__(self, spec: ModelSpec, model: Any, tokenizer: Any, device: str) -> None:
        self.spec, self.model, self.tokenizer, self.device = spec, model, tokenizer, device

    def encode(self, messages: Prompt) -> EncodedPrompt:
        """The tokenizer's own chat template, with the assistant turn opened; raw text as it is."""
        if isinstance(messages, str):
            ids = list(self.tokenizer(messages)["input_ids"])
            return EncodedPrompt(ids, len(ids))
        encoded = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                     return_dict=True)
        ids = list(encoded["input_ids"])
        return EncodedPrompt(ids, len(ids))

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def generate(self, batch: list[GenerationRequest]) -> list[GenerationResult | Exception]:
        """Run requests with one shared setting in one call; on CUDA OOM retry once, smaller."""
        import torch

        try:
            return self._generate(batch)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            log.warning("CUDA out of memory with %d requests; retrying with 1 beam and half the new tokens", len(batch))
            for request in batch:
                request.settings = replace(request.settings, num_beams=1,
                                           max_new_tokens=max(1, request.settings.max_new_tokens // 2))
            try:
                return self._generate(batch)
            except torch.cuda.OutOfMemoryError as exc:
                torch.cuda.empty_cache()
                raise EngineOverloaded("The GPU is out of memory; retry shortly", retry_after_s=10) from exc

    def _generate(self, batch: list[GenerationRequest]) -> list[GenerationResult | Exception]:
        import torch

        started = time.monotonic()
        settings = batch[0].settings
        inputs = self._left_padded([request.prompt.ids for request in batch])
        streamer = _RowStreamer(self.tokenizer, batch) if settings.num_beams == 1 else None
        stops = _RowStops(batch, inputs["input_ids"].shape[1], self.tokenizer.eos_token_id, settings.num_beams)
        options: dict[str, Any] = {
            "max_new_tokens": max(request.settings.max_new_tokens for request in batch),
            "num_beams": settings.num_beams,
            "do_sample": settings.do_sample,
            "logits_processor": [_GeneratedRepetitionPenalty(inputs["input_ids"].shape[1], settings.repetition_penalty)],
            "pad_token_id": self.tokenizer.pad_token_id,
            "stopping_criteria": [stops],
            "streamer": streamer,
        }
        if settings.do_sample:
            options.update(temperature=settings.temperature, top_p=settings.top_p, top_k=settings.top_k)
        else:
            options.update(temperature=None, top_p=None, top_k=None)
        with torch.inference_mode():
            output = self.model.generate(**inputs, **options)
        return [self._result(request, row, inputs["input_ids"].shape[1], stops, started)
                for request, row in zip(batch, output)]

    def _left_padded(self, prompts: list[list[int]]) -> dict[str, Any]:
        import torch

        width = max(len(ids) for ids in prompts)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in prompts], device=self.model.device)
        mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in prompts], device=self.model.device)
        return {"input_ids": input_ids, "attention_mask": mask}

    def _result(self, request: GenerationRequest, row: Any, prompt_width: int, stops: "_RowStops",
                started: float) -> GenerationResult:
        generated = row[prompt_width:].tolist()
        eos = self.tokenizer.eos_token_id
        finish = "length"
        if eos in generated:
            generated, finish = generated[:generated.index(eos)], "stop"
        generated = [token for token in generated if token != self.tokenizer.pad_token_id]
        generated = generated[:request.settings.max_new_tokens]
        if request.cancelled.is_set():
            finish = "cancelled"
        elif time.monotonic() > request.deadline:
            finish = "timeout"
        text = _tidy(request, self.tokenizer.decode(generated, skip_special_tokens=True))
        if request.on_token is not None and request.settings.num_beams > 1 and text:
            request.on_token(text)  # beam search cannot stream: the answer comes in one piece
        return GenerationResult(text, request.prompt.tokens, len(generated), finish, request.settings,
                                round(time.monotonic() - started, 3))


def _tidy(request: GenerationRequest, text: str) -> str:
    """A chat answer without surrounding white space; a raw continuation keeps its leading space."""
    return text.rstrip() if isinstance(request.messages, str) else text.strip()


class _GeneratedRepetitionPenalty:
    """CTRL-style repetition penalty over generated tokens only (the prompt's facts stay copyable)."""

    def __init__(self, prompt_width: int, penalty: float) -> None:
        self._width, self._penalty = prompt_width, penalty

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        generated = input_ids[:, self._width:]
        if self._penalty == 1.0 or generated.shape[1] == 0:
            return scores
        seen = torch.gather(scores, 1, generated)
        seen = torch.where(seen < 0, seen * self._penalty, seen / self._penalty)
        return scores.scatter(1, generated, seen)


class _RowStops:
    """Per-row stopping: a row is done at its own max_new_tokens, on cancel, or past its deadline."""

    def __init__(self, batch: list[GenerationRequest], prompt_width: int, eos: int | None, beams: int) -> None:
        self._batch, self._width, self._eos, self._beams = batch, prompt_width, eos, beams

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        now = time.monotonic()
        generated = input_ids.shape[1] - self._width
        done = [request.cancelled.is_set() or now > request.deadline or generated >= request.settings.max_new_tokens
                for request in self._batch]
        if self._beams > 1:  # rows are request x beam; stop only when every request is done
            return torch.full((input_ids.shape[0],), all(done), dtype=torch.bool, device=input_ids.device)
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class _RowStreamer:
    """transformers calls put() with one new token per row; each row's text goes to its own callback."""

    def __init__(self, tokenizer: Any, batch: list[GenerationRequest]) -> None:
        self._tokenizer, self._batch = tokenizer, batch
        self._tokens: list[list[int]] = [[] for _ in batch]
        self._sent: list[int] = [0] * len(batch)
        self._finished = [False] * len(batch)
        self._prompt_seen = False

    def put(self, value: Any) -> None:
        if not self._prompt_seen:  # the first call carries the prompts
            self._prompt_seen = True
            return
        for row, token in enumerate(value.reshape(len(self._batch), -1)[:, -1].tolist()):
            request = self._batch[row]
            if self._finished[row] or request.on_token is None:
                continue
            if token == self._tokenizer.eos_token_id or len(self._tokens[row]) >= request.settings.max_new_tokens:
                self._finished[row] = True
                continue
            self._tokens[row].append(token)
            text = self._tokenizer.decode(self._tokens[row], skip_special_tokens=True)
            text = text if isinstance(request.messages, str) else text.lstrip()
            if text.endswith("\ufffd"):  # half a multi-byte character: wait for the rest
                continue
            piece, self._sent[row] = text[self._sent[row]:], len(text)
            if piece:
                request.on_token(piece)

    def end(self) -> None:
        return None
