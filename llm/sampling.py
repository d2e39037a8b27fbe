"""Choosing next tokens from logits in numpy: the adaptive table's greedy, sampling and beam search.

The llama.cpp engine hands back raw logits per sequence; this module applies the same rules the
transformers engine asks of `generate`: a CTRL-style repetition penalty over generated tokens only,
then temperature, top-k and top-p for sampling (in transformers' order), or beam search with
transformers' length normalisation and its default stopping rule (early_stopping=False).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from llm.settings import GenerationSettings

Logits = np.ndarray


def penalised(logits: Logits, generated: list[int], penalty: float) -> Logits:
    """Scores of tokens already generated pushed down (negative ones multiplied, others divided)."""
    if penalty == 1.0 or not generated:
        return logits
    seen = np.unique(np.asarray(generated, dtype=np.int64))
    scores = logits.copy()
    values = scores[seen]
    scores[seen] = np.where(values < 0, values * penalty, values / penalty)
    return scores


def log_softmax(logits: Logits) -> Logits:
    shifted = logits - logits.max()
    return shifted - np.log(np.exp(shifted).sum())


class TokenPicker:
    """Greedy or sampled choice of one next token for one sequence."""

    def __init__(self, settings: GenerationSettings, seed: int | None = None) -> None:
        self._settings = settings
        self._random = np.random.default_rng(seed)

    def pick(self, logits: Logits, generated: list[int]) -> int:
        settings = self._settings
        scores = penalised(logits.astype(np.float64, copy=False), generated, settings.repetition_penalty)
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
    beams: list[Beam] = field(default_factory=list)
    finished: list[Hypothesis] = field(default_factory=list)
    ended: list[list[int]] = field(default_factory=list)  # every hypothesis that finished, for streaming
    done: bool = False

    def step(self, logits: list[Logits]) -> list[tuple[int, int, float]]:
        """Logits for each live beam (in order) -> the next beams as (parent index, token, score)."""
        candidates = np.stack([beam.score + log_softmax(penalised(row.astype(np.float64), beam.tokens, self.penalty))
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
