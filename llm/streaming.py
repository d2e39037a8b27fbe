"""A generation consumed as a stream of text pieces, opened only once its first token exists.

Streaming routes must choose their status before the first byte. Waiting for the first token
(or for the request to end) before answering means that everything that can fail early (a
full queue, a remote server that is down, a timeout before any output) is still raised here,
as a plain JSON error; what fails later becomes an error event of the stream.
"""
from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator

from llm.engine import GenerationResult, Prompt
from llm.errors import GenerationTimeout
from llm.scheduler import Ticket
from llm.settings import GenerationOverrides, GenerationSettings

FIRST_TOKEN_GRACE_S = 5.0  # past the request's own deadline, when waiting for its first token
Submit = Callable[[Prompt, GenerationOverrides | None, Callable[[str], None], object, tuple[str, ...]], Ticket]


class TokenStream:
    def __init__(self, ticket: Ticket, pieces: queue.Queue[str]) -> None:
        self._ticket, self._pieces = ticket, pieces

    @classmethod
    def open(cls, submit: Submit, messages: Prompt, overrides: GenerationOverrides | None = None,
             owner: object = None, wait_for_first_token: bool = True, stops: tuple[str, ...] = ()) -> "TokenStream":
        """Submit and wait for the first token; raises what went wrong if the request ended without one.
        Without `wait_for_first_token`, only admission errors (full queue, a user's share, no model)
        are raised here; a later failure comes from iterating or from `outcome()`."""
        pieces: queue.Queue[str] = queue.Queue()
        first = threading.Event()

        def on_token(piece: str) -> None:
            pieces.put(piece)
            first.set()

        ticket = submit(messages, overrides, on_token, owner, stops)
        if not wait_for_first_token:
            return cls(ticket, pieces)
        ticket.future.add_done_callback(lambda _future: first.set())
        first.wait(max(0.0, ticket.request.deadline - time.monotonic()) + FIRST_TOKEN_GRACE_S)
        stream = cls(ticket, pieces)
        if ticket.future.done() and pieces.empty():
            stream.outcome()  # raises; a clean empty answer streams as usual
        return stream

    def __iter__(self) -> Iterator[str]:
        return (piece for piece in self.with_silences(float("inf")) if piece is not None)

    def with_silences(self, every_s: float) -> Iterator[str | None]:
        """The pieces, with a None after each `every_s` without one: beam search may say
        nothing for seconds while its beams disagree, and a stream that writes nothing cannot
        notice that its client has gone (the caller writes a keep-alive for each None)."""
        quiet_since = time.monotonic()
        while True:
            try:
                yield self._pieces.get(timeout=0.05)
                quiet_since = time.monotonic()
            except queue.Empty:
                if self._ticket.future.done() and self._pieces.empty():
                    return
                if time.monotonic() - quiet_since >= every_s:
                    quiet_since = time.monotonic()
                    yield None

    def outcome(self) -> GenerationResult:
        """The finished result; raises the request's error, or GenerationTimeout."""
        result = self._ticket.result()
        if result.finish_reason == "timeout":
            raise GenerationTimeout("Generation took too long", retry_after_s=5)
        return result

    def cancel(self) -> None:
        self._ticket.cancel()

    @property
    def settings(self) -> GenerationSettings:
        return self._ticket.request.settings
