"""Rolling summaries: older turns that no longer fit the history budget are folded into one summary."""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from llm.engine import GenerationResult
from llm.settings import GenerationOverrides
from sessions.repository import MessageView

log = logging.getLogger(__name__)

Generate = Callable[[list[dict[str, str]], GenerationOverrides], GenerationResult]

INSTRUCTIONS = (
    "You summarize conversations between a user and an assistant. Write a short summary in plain "
    "sentences. Keep every name, number, date and fact the user gave, and what the user asked."
)


class Summarizer:
    """Asks the model for an updated summary; greedy, within the summary's token budget."""

    def __init__(self, generate: Generate, max_tokens: int) -> None:
        self._generate = generate
        self.max_tokens = max_tokens

    def summarize(self, previous: str | None, turns: Sequence[MessageView], count_tokens: Callable[[str], int],
                  window: int) -> str:
        """The previous summary extended with `turns` (folded in slices that fit the model's window)."""
        summary = previous
        for group in self._groups(turns, count_tokens, window):
            summary = self._fold(summary, group)
        return summary or ""

    def _fold(self, previous: str | None, turns: Sequence[MessageView]) -> str:
        transcript = "\n".join(f"{turn.role.capitalize()}: {turn.content.strip()}" for turn in turns if turn.content.strip())
        request = (f"Summary so far: {previous}\n\n" if previous else "") + (
            f"Conversation:\n{transcript}\n\nWrite the updated summary of the whole conversation.")
        messages = [{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": request}]
        overrides = GenerationOverrides(num_beams=1, temperature=0.0, max_new_tokens=self.max_tokens,
                                        repetition_penalty=1.2)
        text = self._generate(messages, overrides).text.strip()
        if not text:
            log.warning("the model wrote an empty summary; keeping the user's questions verbatim instead")
            text = _questions_only(previous, turns)
        return text

    def _groups(self, turns: Sequence[MessageView], count: Callable[[str], int],
                window: int) -> list[list[MessageView]]:
        """Slices of turns whose transcript fits the window beside the instructions and the summary."""
        room = max(256, window - 2 * self.max_tokens - count(INSTRUCTIONS) - 64)
        groups: list[list[MessageView]] = [[]]
        used = 0
        for turn in turns:
            tokens = count(turn.content) + 4
            if groups[-1] and used + tokens > room:
                groups.append([])
                used = 0
            groups[-1].append(turn)
            used += tokens
        return [group for group in groups if group]


def _questions_only(previous: str | None, turns: Sequence[MessageView]) -> str:
    asked = "; ".join(turn.content.strip()[:200] for turn in turns if turn.role == "user" and turn.content.strip())
    return " ".join(part for part in (previous, f"The user asked: {asked}." if asked else "") if part)
