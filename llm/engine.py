"""The transformers engine: chat template, batched generation with per-request streaming and stops."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from llm.errors import EngineOverloaded
from llm.faithful import answer_end, held_back, penalised_tokens, repeats_itself, spared_tokens
from llm.registry import ModelSpec
from llm.settings import GenerationSettings

if TYPE_CHECKING:
    from llm.static_decode import StaticDecoder

log = logging.getLogger(__name__)

Chat = list[dict[str, str]]
Prompt = Chat | str  # a chat (the model's chat template applies) or raw text to continue (legacy completions)


@dataclass(frozen=True)
class EncodedPrompt:
    """A chat as the engine will run it: token ids (none for a remote model) and their count."""

    ids: list[int]
    tokens: int


@dataclass
class GenerationRequest:
    """One prompt in flight. `on_token` receives text pieces as they are decoded; in beam search,
    the pieces every beam agrees on, then the rest once the best beam is known. Their concatenation
    is the result's text."""

    messages: Prompt
    settings: GenerationSettings
    prompt: EncodedPrompt
    engine: "Engine"  # the one that encoded the prompt runs it, even across a swap
    on_token: Callable[[str], None] | None = None
    deadline: float = float("inf")
    cancelled: threading.Event = field(default_factory=threading.Event)
    submitted_at: float = field(default_factory=time.monotonic)
    first_token_at: float | None = None
    stops: tuple[str, ...] = ()  # strings that end the answer where they begin (llm/faithful.py)
    stopped: bool = False  # a stop string, the sentence limit or a loop ended it

    @property
    def reads_text(self) -> bool:
        """Whether its text is decoded as it grows: to stream it, or to find where it ends."""
        return self.on_token is not None or bool(self.stops) or self.settings.max_sentences > 0

    def ended_in(self, text: str) -> bool:
        """Whether `text` (the best beam's, in beam search) holds the whole answer: a stop string or
        the sentence limit is in it. The search ends there; the answer is cut there (`tidy`)."""
        if not self.stopped and answer_end(text, self.stops, self.settings.max_sentences) is not None:
            self.stopped = True
        return self.stopped

    def ends(self, tokens: list[int]) -> bool:
        """Whether the answer is over after `tokens`: a stop string was met, or it loops."""
        if not self.stopped and repeats_itself(tokens):
            self.stopped = True
        return self.stopped

    def mark_first_token(self) -> None:
        """The model has produced this request's first token (prefill and one step are done)."""
        if self.first_token_at is None:
            self.first_token_at = time.monotonic()

    def figures(self, completion_tokens: int) -> tuple[float | None, float | None]:
        """(time to first token from submission, decode tokens/s after the first token)."""
        if self.first_token_at is None:
            return None, None
        decoding = time.monotonic() - self.first_token_at
        rate = (completion_tokens - 1) / decoding if completion_tokens > 1 and decoding > 0 else None
        return round(self.first_token_at - self.submitted_at, 3), round(rate, 1) if rate is not None else None


@dataclass(frozen=True)
class GenerationResult:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # stop, length, cancelled, timeout
    settings: GenerationSettings
    seconds: float
    ttft_s: float | None = None  # submission to first token (queue wait and prefill included)
    decode_tokens_per_s: float | None = None  # after the first token

    def figures(self) -> dict[str, float | None]:
        """The generation settings used, with the speed figures, as answers report them."""
        return {**self.settings.as_dict(), "ttft_s": self.ttft_s, "decode_tokens_per_s": self.decode_tokens_per_s}


class Engine(Protocol):
    """What the scheduler and the manager need of a backend (transformers here, or a remote server)."""

    spec: ModelSpec
    device: str
    name: str  # what runs it: "transformers", "llama.cpp" or "openai"
    mixes_settings: bool  # one generate call may hold requests with different settings

    def encode(self, messages: Prompt) -> EncodedPrompt: ...

    def count_tokens(self, text: str) -> int: ...

    def generate(self, batch: list[GenerationRequest]) -> list[GenerationResult | Exception]:
        """One result per request, in order; an exception in a slot fails that request alone."""
        ...


class TransformersEngine:
    """Owns one loaded model. Not thread-safe by design: the scheduler is its only caller.

    With a `StaticDecoder` (llm/static_decode.py), batches are padded to its row buckets and
    decode into one of its reusable static caches (as CUDA graphs on a GPU); without one,
    `generate` grows its own cache."""

    name = "transformers"
    mixes_settings = False  # one generate() call takes one setting

    def __init__(self, spec: ModelSpec, model: Any, tokenizer: Any, device: str,
                 decoder: StaticDecoder | None = None) -> None:
        self.spec, self.model, self.tokenizer, self.device = spec, model, tokenizer, device
        self.decoder = decoder

    def encode(self, messages: Prompt) -> EncodedPrompt:
        ids = prompt_ids(self.tokenizer, messages)
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

    def _generate(self, requests: list[GenerationRequest]) -> list[GenerationResult | Exception]:
        import torch

        started = time.monotonic()
        batch = self._padded_batch(requests)
        settings = batch[0].settings
        inputs = self._left_padded([request.prompt.ids for request in batch])
        max_new_tokens = max(request.settings.max_new_tokens for request in batch)
        cache = None
        if self.decoder is not None:
            cache = self.decoder.cache(len(batch) * settings.num_beams, inputs["input_ids"].shape[1] + max_new_tokens)
        width = inputs["input_ids"].shape[1]
        beams = _BeamPrefixStreamer(self.tokenizer, batch, width, settings.num_beams) if settings.num_beams > 1 else None
        with torch.inference_mode():
            if cache is not None and beams is None:
                generated = self._decode_loop(batch, inputs, cache, max_new_tokens)
            else:
                generated = self._generate_call(batch, inputs, cache, max_new_tokens, beams)
        results: list[GenerationResult | Exception] = [
            self._result(request, tokens, started) for request, tokens in zip(batch, generated, strict=True)]
        if beams is not None:
            beams.finish(results)
        return results[:len(requests)]

    def _generate_call(self, batch: list[GenerationRequest], inputs: dict[str, Any], cache: Any,
                       max_new_tokens: int, beams: _BeamPrefixStreamer | None) -> list[list[int]]:
        """transformers' `generate` (every strategy; beam search always): each row's new tokens."""
        settings = batch[0].settings
        width = inputs["input_ids"].shape[1]
        streamer = _RowStreamer(self.tokenizer, batch) if beams is None else None
        stops = _RowStops(batch, width, settings.num_beams, self.tokenizer)
        options: dict[str, Any] = {
            "max_new_tokens": max_new_tokens,
            "num_beams": settings.num_beams,
            "do_sample": settings.do_sample,
            "logits_processor": [self._penalty(batch, width)] + (
                [_EndLoops(width, self.tokenizer.eos_token_id)] if beams is not None else []),
            "pad_token_id": self.tokenizer.pad_token_id,
            "stopping_criteria": [stops] if beams is None else [stops, beams],
            "streamer": streamer,
        }
        if cache is not None:  # the decoder's graphs replace transformers' compile
            options.update(past_key_values=cache, disable_compile=True)
        if settings.do_sample:
            options.update(temperature=settings.temperature, top_p=settings.top_p, top_k=settings.top_k)
        else:
            options.update(temperature=None, top_p=None, top_k=None)
        output = self.model.generate(**inputs, **options)
        return [row[width:].tolist() for row in output]

    def _decode_loop(self, batch: list[GenerationRequest], inputs: dict[str, Any], cache: Any,
                     max_new_tokens: int) -> list[list[int]]:
        """Greedy or sampling on the static path (llm/decode_loop.py): each row's new tokens."""
        from llm.decode_loop import DecodeLoop

        settings = batch[0].settings
        width = inputs["input_ids"].shape[1]
        eos = self.tokenizer.eos_token_id
        rows = _LoopRows(self.tokenizer, batch, eos)
        loop = DecodeLoop(self.model, eos, self.tokenizer.pad_token_id, _processors(self._penalty(batch, width), settings))
        loop.run(inputs["input_ids"], inputs["attention_mask"], cache, settings, max_new_tokens, rows.step)
        return rows.tokens

    def _penalty(self, batch: list[GenerationRequest], width: int) -> _GeneratedRepetitionPenalty:
        """The batch's repetition penalty (none unless asked for), sparing what it must."""
        penalty = batch[0].settings.repetition_penalty
        spared = [spared_tokens(self.tokenizer, request.prompt.ids, penalty) for request in batch]
        return _GeneratedRepetitionPenalty(width, penalty, spared)

    def _padded_batch(self, requests: list[GenerationRequest]) -> list[GenerationRequest]:
        """The requests, then copies of the first that stop at once, up to the decoder's row bucket."""
        if self.decoder is None:
            return requests
        first = requests[0]
        filler = replace(first, settings=replace(first.settings, max_new_tokens=1), on_token=None,
                         cancelled=threading.Event())
        return requests + [filler] * (self.decoder.shapes.rows_for(len(requests)) - len(requests))

    def _left_padded(self, prompts: list[list[int]]) -> dict[str, Any]:
        import torch

        width = max(len(ids) for ids in prompts)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in prompts], device=self.model.device)
        mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in prompts], device=self.model.device)
        return {"input_ids": input_ids, "attention_mask": mask}

    def _result(self, request: GenerationRequest, generated: list[int], started: float) -> GenerationResult:
        eos = self.tokenizer.eos_token_id
        finish = "length"
        if eos in generated:
            generated, finish = generated[:generated.index(eos)], "stop"
        generated = [token for token in generated if token != self.tokenizer.pad_token_id]
        generated = generated[:request.settings.max_new_tokens]
        text = tidy(request, self.tokenizer.decode(generated, skip_special_tokens=True))
        if request.stopped:  # a stop string, the sentence limit or a loop ended it
            finish = "stop"
        elif request.cancelled.is_set():
            finish = "cancelled"
        elif time.monotonic() > request.deadline:
            finish = "timeout"
        return GenerationResult(text, request.prompt.tokens, len(generated), finish, request.settings,
                                round(time.monotonic() - started, 3), *request.figures(len(generated)))


def prompt_ids(tokenizer: Any, messages: Prompt) -> list[int]:
    """A chat through the tokenizer's own chat template, with the assistant turn opened; raw text as
    it is. A base model's tokenizer has no chat template (Gemma 3 270M, pretrained): its chat is
    written as plain text - the system prompt, each user turn, each answer after "Answer:" - ending
    in "Answer:", for the model to continue."""
    if isinstance(messages, str):
        return list(tokenizer(messages)["input_ids"])
    if getattr(tokenizer, "chat_template", None):
        return list(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                  return_dict=True)["input_ids"])
    turns = [f"Answer: {m['content']}" if m["role"] == "assistant" else m["content"] for m in messages]
    return list(tokenizer("\n\n".join(turns) + "\nAnswer:")["input_ids"])


def tidy(request: GenerationRequest, text: str) -> str:
    """The answer up to its first stop string (or its sentence limit); a chat answer without surrounding white space, a raw
    continuation with its leading space."""
    cut = answer_end(text, request.stops, request.settings.max_sentences)
    if cut is not None:
        text, request.stopped = text[:cut], True
    return text.rstrip() if isinstance(request.messages, str) else text.strip()


class _GeneratedRepetitionPenalty:
    """CTRL-style repetition penalty over the generated tokens a caller asked it for, sparing
    digits, punctuation and the prompt's own tokens (llm/faithful.py): facts stay copyable.
    Rows are requests x beams, request-major, as `generate` lays them out."""

    def __init__(self, prompt_width: int, penalty: float, spared: list[frozenset[int]]) -> None:
        self._width, self._penalty, self._spared = prompt_width, penalty, spared

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        if self._penalty == 1.0 or input_ids.shape[1] == self._width:
            return scores
        per_request = max(1, input_ids.shape[0] // len(self._spared))
        scores = scores.clone()
        for row, generated in enumerate(input_ids[:, self._width:].tolist()):
            ids = penalised_tokens(generated, self._spared[row // per_request])
            if ids:
                index = torch.tensor(ids, device=scores.device)
                seen = scores[row, index]
                scores[row, index] = torch.where(seen < 0, seen * self._penalty, seen / self._penalty)
        return scores


class _EndLoops:
    """Beam search: a beam whose answer loops (llm/faithful.py) can only end, never go on."""

    def __init__(self, prompt_width: int, eos: int) -> None:
        self._width, self._eos = prompt_width, eos

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        looping = [row for row, tokens in enumerate(input_ids[:, self._width:].tolist()) if repeats_itself(tokens)]
        if looping:
            scores = scores.clone()
            scores[looping] = float("-inf")
            scores[looping, self._eos] = 0.0
        return scores


def _processors(penalty: _GeneratedRepetitionPenalty, settings: GenerationSettings) -> Callable[[Any, Any], Any]:
    """What `generate` does to the scores before choosing: the penalty, then temperature, top-k
    and top-p when sampling (transformers' own warpers, in its order)."""
    from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    steps: list[Callable[[Any, Any], Any]] = [penalty]
    if settings.do_sample:
        steps.append(TemperatureLogitsWarper(settings.temperature))
        if settings.top_k > 0:
            steps.append(TopKLogitsWarper(settings.top_k))
        if settings.top_p < 1.0:
            steps.append(TopPLogitsWarper(settings.top_p))

    def apply(sequences: Any, scores: Any) -> Any:
        for step in steps:
            scores = step(sequences, scores)
        return scores

    return apply


class _LoopRows:
    """The host's side of the decode loop: each row's tokens, streamed as they come, and which rows
    are done (end token, max_new_tokens, cancelled, past the deadline) - what `_RowStops` and
    `_RowStreamer` do for `generate`."""

    def __init__(self, tokenizer: Any, batch: list[GenerationRequest], eos: int) -> None:
        self._tokenizer, self._batch, self._eos = tokenizer, batch, eos
        self.tokens: list[list[int]] = [[] for _ in batch]
        self._sent = [0] * len(batch)
        self._done = [False] * len(batch)

    def step(self, step_tokens: list[int]) -> list[bool]:
        now = time.monotonic()
        for row, (request, token) in enumerate(zip(self._batch, step_tokens, strict=True)):
            if self._done[row]:
                continue
            request.mark_first_token()
            self.tokens[row].append(token)
            if token == self._eos:
                self._done[row] = True
                continue
            if request.reads_text:
                self._sent[row] += len(send_new_text(self._tokenizer, request, self.tokens[row], self._sent[row]))
            self._done[row] = (request.ends(self.tokens[row]) or len(self.tokens[row]) >= request.settings.max_new_tokens
                               or request.cancelled.is_set() or now > request.deadline)
        return self._done


class _RowStops:
    """Per-row stopping: a row is done at its own max_new_tokens, on cancel, past its deadline, or (in
    beam search) once its best beam holds a stop string or its sentence limit."""

    def __init__(self, batch: list[GenerationRequest], prompt_width: int, beams: int, tokenizer: Any) -> None:
        self._batch, self._width, self._beams, self._tokenizer = batch, prompt_width, beams, tokenizer
        self._none_done: Any = None

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        now = time.monotonic()
        generated = input_ids.shape[1] - self._width
        for index, request in enumerate(self._batch):
            request.mark_first_token()
            if self._beams > 1 and request.reads_text:  # running beams come best first
                best = input_ids[index * self._beams, self._width:].tolist()
                request.ended_in(self._tokenizer.decode(best, skip_special_tokens=True).lstrip())
        done = [request.stopped or request.cancelled.is_set() or now > request.deadline
                or generated >= request.settings.max_new_tokens for request in self._batch]
        if not any(done):  # the common step: no copy to the device
            if self._none_done is None or self._none_done.shape[0] != input_ids.shape[0]:
                self._none_done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
            return self._none_done
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
            if self._finished[row]:
                continue
            if token == self._tokenizer.eos_token_id or len(self._tokens[row]) >= request.settings.max_new_tokens:
                self._finished[row] = True
                continue
            self._tokens[row].append(token)
            if request.reads_text:
                self._sent[row] += len(send_new_text(self._tokenizer, request, self._tokens[row], self._sent[row]))
            request.ends(self._tokens[row])

    def end(self) -> None:
        return None


def send_new_text(tokenizer: Any, request: GenerationRequest, tokens: list[int], sent: int) -> str:
    """Send the text of `tokens` past the first `sent` characters; the piece sent ("" for none).

    Held back: half a multi-byte character (until the rest comes), trailing white space (the
    answer is stripped at the end; sent later if more text follows) and a tail that may begin a
    stop string, so the pieces always add up to exactly the final text. Text from a stop string
    on is never sent, and the request is marked `stopped`."""
    text = tokenizer.decode(tokens, skip_special_tokens=True)
    text = text if isinstance(request.messages, str) else text.lstrip()
    if text.endswith("\ufffd"):
        return ""
    cut = answer_end(text, request.stops, request.settings.max_sentences)
    if cut is not None:
        text, request.stopped = text[:cut], True
    elif request.stops:
        text = text[:len(text) - held_back(text, request.stops)]
    piece = text.rstrip()[sent:]
    if piece and request.on_token is not None:
        request.on_token(piece)
    return piece


class _BeamPrefixStreamer:
    """Streams beam search without changing its answer.

    At every step transformers hands the stopping criteria all candidate continuations of each
    request (2 x num_beams, best first) before it picks the beams to keep and the hypotheses that
    finish. Every hypothesis beam search can end up returning is among these candidates at some
    step, so a token is sent once all of this step's candidates, and every candidate that ended
    (EOS) among the best num_beams at an earlier step, agree on it: the sent text is the beginning
    of whichever beam wins, and the rest follows when the search ends (`finish`)."""

    def __init__(self, tokenizer: Any, batch: list[GenerationRequest], prompt_width: int, beams: int) -> None:
        self._tokenizer, self._batch, self._width, self._beams = tokenizer, batch, prompt_width, beams
        self._ends = {tokenizer.eos_token_id, tokenizer.pad_token_id}
        self._ended: list[list[list[int]]] = [[] for _ in batch]
        self._agreed: list[int] = [0] * len(batch)  # tokens every candidate agrees on, per request
        self._streamed: list[str] = [""] * len(batch)  # the text sent so far, per request

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        rows = input_ids[:, self._width:].tolist()
        per_request = len(rows) // len(self._batch)
        for index, request in enumerate(self._batch):
            if request.on_token is None:
                continue
            candidates = [self._without_end(row) for row in rows[index * per_request:(index + 1) * per_request]]
            self._ended[index] += [candidate for rank, candidate in enumerate(candidates)
                                   if rank < self._beams and len(candidate) < len(rows[0])]
            agreed = common_prefix(candidates + self._ended[index])[:request.settings.max_new_tokens]
            if len(agreed) > self._agreed[index]:
                self._agreed[index] = len(agreed)
                self._streamed[index] += send_new_text(self._tokenizer, request, agreed, len(self._streamed[index]))
        return torch.zeros(len(rows), dtype=torch.bool, device=input_ids.device)

    def _without_end(self, row: list[int]) -> list[int]:
        while row and row[-1] in self._ends:
            row = row[:-1]
        return row

    def finish(self, results: list["GenerationResult | Exception"]) -> None:
        """Send each request the rest of its final text."""
        for index, (request, result) in enumerate(zip(self._batch, results, strict=True)):
            if request.on_token is None or isinstance(result, Exception):
                continue
            streamed = self._streamed[index]
            if not result.text.startswith(streamed):
                log.error("beam streaming sent text that is not the start of the final answer")
                continue
            rest = result.text[len(streamed):]
            if rest:
                request.on_token(rest)


def common_prefix(sequences: list[list[int]]) -> list[int]:
    if not sequences:
        return []
    shortest = min(sequences, key=len)
    for position, token in enumerate(shortest):
        if any(sequence[position] != token for sequence in sequences):
            return shortest[:position]
    return shortest
