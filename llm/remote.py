"""The remote engine: generation on any OpenAI-compatible server (vLLM, TGI, llama.cpp server, Ollama).

The way to serve many users from a GPU cluster: this server keeps auth, documents, sessions and
prompt assembly, and sends each prompt to POST {url}/chat/completions with `stream: true`.

- Streaming: each `data:` chunk's delta goes to the request's own callback, as with the local
  engine. A cancelled request (client gone) or one past its deadline closes the connection, which
  stops the remote server's work too (vLLM and llama.cpp abort on disconnect).
- Retries with exponential backoff (0.5 s, 1 s, 2 s ... capped by the deadline) on connection
  errors and on 429/502/503/504, but only before the first token: a half-streamed answer is never
  silently restarted.
- Errors in the API's shapes: unreachable or still busy after the retries: 503
  UPSTREAM_UNAVAILABLE (with Retry-After); any other refusal or a malformed answer: 502
  UPSTREAM_ERROR, naming the upstream status, never echoing credentials.
- Sampling maps to the OpenAI parameters (temperature, top_p, max_tokens). The OpenAI API has no
  beam search, so the adaptive table's beam rows run greedy here, and the settings returned with
  the answer say so. Token counts come from the server's `usage` when it sends one; prompts are
  measured at about 4 characters a token for budgeting (there is no tokenizer on this side).
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlparse

import httpx

from common.errors import DomainError
from llm.engine import EncodedPrompt, GenerationRequest, GenerationResult, Prompt
from llm.errors import RemoteFailed, RemoteUnavailable
from llm.faithful import StopWatcher
from llm.registry import ModelSpec
from llm.settings import GenerationSettings

log = logging.getLogger(__name__)

CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4
RETRYABLE_STATUS = {429, 502, 503, 504}






@dataclass(frozen=True)
class RemoteOptions:
    url: str  # base URL ending in /v1
    model: str  # the model name the remote server knows
    api_key: str | None = None
    retries: int = 3
    backoff_s: float = 0.5
    connect_timeout_s: float = 5.0

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> "RemoteOptions":
        source = spec.source
        key_variable = source.get("api_key_env")
        return cls(url=str(source["url"]).rstrip("/"), model=str(source["model"]),
                   api_key=os.environ.get(key_variable) if key_variable else None,
                   retries=int(source.get("retries", 3)), backoff_s=float(source.get("backoff_s", 0.5)),
                   connect_timeout_s=float(source.get("connect_timeout_s", 5.0)))


class _NotYet(Exception):
    """A retryable failure before the first token."""

    def __init__(self, reason: str, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s


class OpenAIEngine:
    """Sends each request of a batch on its own connection, concurrently: the remote server batches."""

    name = "openai"
    mixes_settings = True  # each request is its own HTTP call

    def __init__(self, spec: ModelSpec, options: RemoteOptions, client: httpx.Client | None = None) -> None:
        self.spec, self.options = spec, options
        self.device = f"remote:{urlparse(options.url).netloc}"
        self._client = client or httpx.Client(limits=httpx.Limits(max_connections=64))

    def encode(self, messages: Prompt) -> EncodedPrompt:
        if isinstance(messages, str):
            return EncodedPrompt([], self.count_tokens(messages))
        tokens = sum(self.count_tokens(message["content"]) + TOKENS_PER_MESSAGE for message in messages)
        return EncodedPrompt([], tokens + TOKENS_PER_MESSAGE)

    def count_tokens(self, text: str) -> int:
        return math.ceil(len(text) / CHARS_PER_TOKEN)

    def generate(self, batch: list[GenerationRequest]) -> list[GenerationResult | Exception]:
        if len(batch) == 1:
            return [self._guarded(batch[0])]
        with ThreadPoolExecutor(max_workers=len(batch), thread_name_prefix="remote") as pool:
            return list(pool.map(self._guarded, batch))

    def close(self) -> None:
        self._client.close()

    def _guarded(self, request: GenerationRequest) -> GenerationResult | Exception:
        try:
            return self._with_retries(request)
        except DomainError as exc:
            return exc

    def _with_retries(self, request: GenerationRequest) -> GenerationResult:
        started = time.monotonic()
        for attempt in range(self.options.retries + 1):
            try:
                return self._stream(request, started)
            except _NotYet as failure:
                wait = failure.retry_after_s or self.options.backoff_s * 2 ** attempt
                last_try = attempt == self.options.retries or time.monotonic() + wait >= request.deadline
                log.warning("remote model %s: %s (attempt %d of %d)%s", self.spec.id, failure, attempt + 1,
                            self.options.retries + 1, "" if last_try else f"; retrying in {wait:.1f} s")
                if last_try or request.cancelled.wait(wait):
                    if request.cancelled.is_set():
                        return _empty(request, started, "cancelled")
                    raise RemoteUnavailable(f"The remote model server is unavailable ({failure})",
                                            retry_after_s=5) from None
        raise AssertionError("unreachable")

    def _stream(self, request: GenerationRequest, started: float) -> GenerationResult:
        settings = _as_sent(request.settings)
        remaining = max(0.1, request.deadline - time.monotonic()) if math.isfinite(request.deadline) else None
        timeout = httpx.Timeout(remaining, connect=min(self.options.connect_timeout_s, remaining or math.inf))
        pieces: list[str] = []
        watcher = StopWatcher(request.stops, request.settings.max_sentences)  # the server's own stop support varies: cut here
        usage: dict[str, Any] = {}
        finish = "stop"
        try:
            with self._client.stream("POST", self._endpoint(request), json=self._body(request, settings),
                                     headers=self._headers(), timeout=timeout) as response:
                _check_status(response)
                for line in response.iter_lines():
                    if request.cancelled.is_set() or time.monotonic() > request.deadline:
                        finish = "cancelled" if request.cancelled.is_set() else "timeout"
                        break
                    chunk = _parse(line)
                    if chunk is None:
                        continue
                    if isinstance(chunk, str):  # "[DONE]"
                        break
                    usage = chunk.get("usage") or usage
                    for choice in chunk.get("choices") or []:
                        piece = choice.get("text") or (choice.get("delta") or {}).get("content") or ""
                        if piece:
                            if not pieces and not isinstance(request.messages, str):
                                piece = piece.lstrip()
                            pieces.append(piece)
                            request.mark_first_token()
                            released = watcher.feed(piece)
                            if request.on_token is not None and released:
                                request.on_token(released)
                        finish = _finish_reason(choice.get("finish_reason")) or finish
                    if watcher.stopped:
                        request.stopped = True
                        break
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError, httpx.ReadError) as exc:
            if pieces:
                raise RemoteUnavailable("The remote model server dropped the connection mid-answer") from exc
            raise _NotYet(f"{type(exc).__name__}: {exc}") from exc
        except httpx.ReadTimeout:
            finish = "timeout"
        tail = watcher.flush()
        if tail and request.on_token is not None:
            request.on_token(tail)
        text = watcher.text.rstrip() if isinstance(request.messages, str) else watcher.text.strip()
        completion_tokens = int(usage.get("completion_tokens") or self.count_tokens(text))
        return GenerationResult(
            text, int(usage.get("prompt_tokens") or request.prompt.tokens), completion_tokens, finish, settings,
            round(time.monotonic() - started, 3), *request.figures(completion_tokens))

    def _endpoint(self, request: GenerationRequest) -> str:
        """Chats go to /chat/completions; raw text (legacy completions) to /completions."""
        return f"{self.options.url}/{'completions' if isinstance(request.messages, str) else 'chat/completions'}"

    def _body(self, request: GenerationRequest, settings: GenerationSettings) -> dict[str, Any]:
        prompt_field = "prompt" if isinstance(request.messages, str) else "messages"
        return {"model": self.options.model, prompt_field: request.messages, "stream": True,
                "stream_options": {"include_usage": True}, "max_tokens": settings.max_new_tokens,
                "temperature": settings.temperature if settings.do_sample else 0.0,
                "top_p": settings.top_p if settings.do_sample else 1.0}

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream"}
        if self.options.api_key:
            headers["Authorization"] = f"Bearer {self.options.api_key}"
        return headers


def _as_sent(settings: GenerationSettings) -> GenerationSettings:
    """The settings the remote server really gets (no beams over the OpenAI API)."""
    if settings.num_beams == 1:
        return settings
    return replace(settings, num_beams=1, strategy="sample" if settings.do_sample else "greedy")


def _check_status(response: httpx.Response) -> None:
    if response.status_code == 200:
        return
    response.read()
    detail = _upstream_message(response)
    if response.status_code in RETRYABLE_STATUS:
        retry_after = response.headers.get("Retry-After", "")
        raise _NotYet(f"HTTP {response.status_code}{detail}",
                      min(float(retry_after), 10.0) if retry_after.replace(".", "", 1).isdigit() else None)
    raise RemoteFailed(f"The remote model server refused the request (HTTP {response.status_code}{detail})",
                       {"upstream_status": response.status_code})


def _upstream_message(response: httpx.Response) -> str:
    try:
        error = response.json().get("error")
        message = error.get("message") if isinstance(error, dict) else error
    except (ValueError, AttributeError):
        message = None
    return f": {str(message)[:200]}" if message else ""


def _parse(line: str) -> dict[str, Any] | str | None:
    if not line.startswith("data:"):
        return None
    data = line[5:].strip()
    if data == "[DONE]":
        return data
    try:
        chunk = json.loads(data)
    except ValueError as exc:
        raise RemoteFailed("The remote model server sent a malformed stream") from exc
    if isinstance(chunk, dict) and chunk.get("error"):
        error = chunk["error"]
        message = error.get("message") if isinstance(error, dict) else error
        raise RemoteFailed(f"The remote model server failed mid-answer: {str(message)[:200]}")
    return chunk if isinstance(chunk, dict) else None


def _finish_reason(reason: str | None) -> str | None:
    return {"stop": "stop", "length": "length", "eos": "stop"}.get(reason or "", None) if reason else None


def _empty(request: GenerationRequest, started: float, finish: str) -> GenerationResult:
    return GenerationResult("", request.prompt.tokens, 0, finish, _as_sent(request.settings),
                            round(time.monotonic() - started, 3))
