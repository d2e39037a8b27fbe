"""Choosing next tokens from logits in numpy: the adaptive table's greedy, sampling and beam search.

The llama.cpp engine hands back raw logits per sequence; this module applies the same rules the
transformers engine asks of `generate`: a CTRL-style repetition penalty (when asked for) over the
generated tokens that are neither digits, punctuation nor the prompt's own (llm/faithful.py); a
sequence that loops can only end; then temperature, top-k and top-p for sampling (in transformers' order), or beam search with
transformers' length normalisation and its default stopping rule (early_stopping=False).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from llm.faithful import penalised_tokens, repeats_itself
from llm.settings import GenerationSettings

Logits = np.ndarray


def penalised(logits: Logits, generated: list[int], penalty: float, spared: frozenset[int] = frozenset()) -> Logits:
    """Scores of tokens already generated pushed down (negative ones multiplied, others divided),
    except the `spared` ones."""
    if penalty == 1.0 or not generated:
        return logits
    seen = np.asarray(penalised_tokens(generated, spared), dtype=np.int64)
    if seen.size == 0:
        return logits
    scores = logits.copy()
    values = scores[seen]
    scores[seen] = np.where(values < 0, values * penalty, values / penalty)
    return scores


def log_softmax(logits: Logits) -> Logits:
    shifted = logits - logits.max()
    return shifted - np.log(np.exp(shifted).sum())


class TokenPicker:
    """Greedy or sampled choice of one next token for one sequence."""

    def __init__(self, settings: GenerationSettings, end_token: int, spared: frozenset[int] = frozenset(),
                 seed: int | None = None) -> None:
        self._settings, self._end, self._spared = settings, end_token, spared
        self._random = np.random.default_rng(seed)

    def pick(self, logits: Logits, generated: list[int]) -> int:
        """The next token; the end token once the answer loops."""
        settings = self._settings
        if repeats_itself(generated):
            return self._end
        scores = penalised(logits.astype(np.float64, copy=False), generated, settings.repetition_penalty, self._spared)
        if not settings.do_sample or settings.temperature <= 0:
            return int(np.argmax(scores))
        scores = scores / settings.temperature
        if 0 < settings.top_k < scores.shape[0]:
            cutoff = np.partition(scores, -settings.top_k)[-settings.top_k]
            scores = np.where(scores < cutoff, -np.inf, scores)
        probabilities = np.exp(scores - scores.max())
        probabilities /= probabilities.sum()
        if settings.top_p < 1.0:
            probabilities = _nucleus(probabilities, settings.top_p)
        return int(self._random.choice(probabilities.shape[0], p=probabilities))


def _nucleus(probabilities: np.ndarray, top_p: float) -> np.ndarray:
    """Keep the most likely tokens whose mass reaches top_p (the one crossing it included)."""
    order = np.argsort(probabilities)[::-1]
    cumulative = np.cumsum(probabilities[order])
    keep = order[: int(np.searchsorted(cumulative, top_p)) + 1]
    kept = np.zeros_like(probabilities)
    kept[keep] = probabilities[keep]
    return kept / kept.sum()


@dataclass
class Beam:
    """One live hypothesis: its generated tokens, summed log-probability and KV sequence id."""

    tokens: list[int]
    score: float
    seq_id: int


@dataclass
class Hypothesis:
    tokens: list[int]
    score: float  # length-normalised


@dataclass
class BeamSearch:
    """One request's beam search; `step` turns this step's logits into the next beams.

    The rules follow transformers' beam search (length_penalty 1.0, early_stopping False): each
    step keeps the 2 x beams best continuations; one ending in an end token becomes a finished
    hypothesis if it ranks among the best `beams`; the search ends when `beams` hypotheses are
    finished and no live beam can still beat the worst of them, or at max_new_tokens."""

    width: int
    penalty: float
    end_tokens: frozenset[int]
    spared: frozenset[int] = frozenset()
    beams: list[Beam] = field(default_factory=list)
    finished: list[Hypothesis] = field(default_factory=list)
    ended: list[list[int]] = field(default_factory=list)  # every hypothesis that finished, for streaming
    done: bool = False

    def step(self, logits: list[Logits]) -> list[tuple[int, int, float]]:
        """Logits for each live beam (in order) -> the next beams as (parent index, token, score)."""
        candidates = np.stack([beam.score + self._log_probabilities(beam, row)
                               for beam, row in zip(self.beams, logits, strict=True)])
        vocab = candidates.shape[1]
        flat = candidates.ravel()
        best = np.argpartition(flat, -2 * self.width)[-2 * self.width:]
        best = best[np.argsort(flat[best])[::-1]]
        chosen: list[tuple[int, int, float]] = []
        for rank, index in enumerate(best.tolist()):
            parent, token = divmod(index, vocab)
            if token in self.end_tokens:
                if rank < self.width:
                    self._finish(self.beams[parent].tokens, float(flat[index]))
                continue
            chosen.append((parent, token, float(flat[index])))
            if len(chosen) == self.width:
                break
        best_running = max((score for _, _, score in chosen), default=None)
        self.done = self._cannot_improve(best_running, len(self.beams[0].tokens) + 1)
        return chosen

    def _log_probabilities(self, beam: Beam, logits: Logits) -> Logits:
        """The next token's log-probabilities for a beam; a beam that loops can only end."""
        if repeats_itself(beam.tokens):
            ending = np.full(logits.shape[0], -np.inf)
            ending[min(self.end_tokens)] = 0.0
            return ending
        return log_softmax(penalised(logits.astype(np.float64), beam.tokens, self.penalty, self.spared))

    def advance(self, chosen: list[tuple[int, int, float]], seq_ids: list[int]) -> None:
        """Make the chosen continuations the live beams, in the given KV sequences."""
        self.beams = [Beam(self.beams[parent].tokens + [token], score, seq_id)
                      for (parent, token, score), seq_id in zip(chosen, seq_ids, strict=True)]

    def close(self) -> list[int]:
        """At the end (length reached or done): the best hypothesis' tokens."""
        if not self.done or len(self.finished) < self.width:
            for beam in self.beams:
                self._finish(beam.tokens, beam.score, ended=False)
        return max(self.finished, key=lambda hypothesis: hypothesis.score).tokens

    def _finish(self, tokens: list[int], score: float, ended: bool = True) -> None:
        self.finished.append(Hypothesis(tokens, score / max(1, len(tokens) + (1 if ended else 0))))
        if ended:
            self.ended.append(tokens)
        self.finished.sort(key=lambda hypothesis: hypothesis.score, reverse=True)
        del self.finished[self.width:]

    def _cannot_improve(self, best_running: float | None, length: int) -> bool:
        if best_running is None:
            return True
        if len(self.finished) < self.width:
            return False
        return self.finished[-1].score >= best_running / length
