"""Decoding that never changes a fact: loops end the answer instead of a penalty bending tokens,
and text past the prompt's own markup is never produced.

A token-level repetition penalty counts every token the answer already holds, and a small model
writes numbers digit by digit: after "Voyager 1" and "September 5," the digits of "1977" are
"repeated", and SmolLM2 wrote 2017. So:

- No penalty by default (llm/settings.py). A loop - the answer's last `LOOP_TOKENS` tokens already
  written once before in the same answer - ends the answer there, on every strategy and engine:
  a looping answer is cut short, never steered to other words.
- A penalty a caller asks for (`repetition_penalty` > 1) spares digits, punctuation and every
  token of the prompt, so names, numbers, versions, commands and paths from the sources stay
  copyable exactly.
- Stop strings end the answer where the model starts writing the prompt's markup or a new turn
  (`MARKUP_STOPS`), on both engines, streamed or not; the text before the stop is the answer.
  A sentence limit (`max_sentences`) ends it the same way, where the next sentence would begin.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from common.text import sentence_limit_cut

LOOP_TOKENS = 10
# The prompt's own markup (answers/prompt.py) and chat-template tags: an answer that starts to
# write one of these is echoing its prompt.
MARKUP_STOPS = ("<document", "</document", "<source", "</source", "<|", "\nQuestion:")
_NOT_WORDS = re.compile(r"[\W\d_]*")  # digits, punctuation and white space only


def repeats_itself(tokens: Sequence[int], span: int = LOOP_TOKENS) -> bool:
    """Whether the last `span` tokens occur earlier in `tokens` (an answer in a loop)."""
    if len(tokens) < 2 * span:
        return False
    tail = list(tokens[-span:])
    first = tail[0]
    for start in range(len(tokens) - 2 * span, -1, -1):  # latest first: loops are usually short
        if tokens[start] == first and list(tokens[start:start + span]) == tail:
            return True
    return False


def stop_index(text: str, stops: Iterable[str]) -> int | None:
    """Where the earliest stop string begins in `text`, or None."""
    found = [index for index in (text.find(stop) for stop in stops) if index >= 0]
    return min(found) if found else None


def answer_end(text: str, stops: Iterable[str], max_sentences: int = 0) -> int | None:
    """Where the answer ends in `text`: at the earliest stop string, or at the end of its sentence
    number `max_sentences` once the next has begun (common/text.py); None while it goes on."""
    ends = [end for end in (stop_index(text, stops), sentence_limit_cut(text, max_sentences)) if end is not None]
    return min(ends) if ends else None


def held_back(text: str, stops: Iterable[str]) -> int:
    """How many trailing characters may be the beginning of a stop string (not to be sent yet)."""
    return max((size for stop in stops for size in range(1, len(stop)) if text.endswith(stop[:size])), default=0)


def unpenalised_tokens(tokenizer: Any) -> frozenset[int]:
    """Ids of the tokens made only of digits, punctuation and white space (a penalty spares them)."""
    cached = getattr(tokenizer, "_docchat_unpenalised", None)
    if cached is None:
        vocabulary = range(len(tokenizer))
        texts = tokenizer.batch_decode([[token] for token in vocabulary])
        cached = frozenset(token for token, text in zip(vocabulary, texts, strict=True)
                           if _NOT_WORDS.fullmatch(text))
        tokenizer._docchat_unpenalised = cached
    return cached


def spared_tokens(tokenizer: Any, prompt_ids: Iterable[int], penalty: float) -> frozenset[int]:
    """What a penalty spares for one prompt: digits, punctuation and the prompt's own tokens
    (nothing to spare when there is no penalty)."""
    return unpenalised_tokens(tokenizer) | frozenset(prompt_ids) if penalty != 1.0 else frozenset()


def penalised_tokens(generated: Iterable[int], spared: frozenset[int] | set[int]) -> list[int]:
    """The generated tokens a penalty applies to: the others are spared."""
    return sorted(set(generated) - spared)


class StopWatcher:
    """Cuts text at the first stop sequence (or past its sentence limit), holding back a tail that may
    be the start of a stop sequence."""

    def __init__(self, stops: Sequence[str], max_sentences: int = 0) -> None:
        self._stops, self._max_sentences = stops, max_sentences
        self.text = ""
        self._sent = 0
        self.stopped = False

    def feed(self, piece: str) -> str:
        """The part of the text that is now certainly before any stop sequence."""
        if self.stopped:
            return ""
        self.text += piece
        cut = answer_end(self.text, self._stops, self._max_sentences)
        if cut is not None:
            self.stopped, self.text = True, self.text[:cut]
            return self._release(len(self.text))
        return self._release(len(self.text) - held_back(self.text, self._stops))

    def flush(self) -> str:
        return self._release(len(self.text))

    def _release(self, upto: int) -> str:
        piece, self._sent = self.text[self._sent:upto], max(self._sent, upto)
        return piece
