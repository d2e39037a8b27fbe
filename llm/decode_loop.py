"""Greedy and sampled decoding on a static cache, with the host one step behind the GPU.

transformers' `generate` reads every new token back before it launches the next step (its stop
check and its streamer both wait for the GPU), so the GPU idles while Python streams, checks
stops and prepares the next inputs. This loop keeps everything a step needs on the GPU: the next
tokens feed the next step directly, the position and attention mask advance in place, and the
step is the CUDA graph `StaticDecoder` recorded for its shape. The host reads step t's tokens
(copied into pinned memory, behind an event) while step t+1 runs, then streams them, and stops
each row at its end token, its max_new_tokens, cancellation or deadline, as `generate` would.
One step past the last row's end is computed and thrown away.

Beam search stays on `generate` (over the same caches and graphs): its bookkeeping is per step.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from llm.settings import GenerationSettings


class DecodeLoop:
    """Runs one batch of prompts (left-padded, sharing one setting) to their ends."""

    def __init__(self, model: Any, eos_token_id: int, pad_token_id: int,
                 processors: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
        self._model, self._eos, self._pad, self._processors = model, eos_token_id, pad_token_id, processors

    def run(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, cache: Any, settings: GenerationSettings,
            max_new_tokens: int, on_step: Callable[[list[int]], list[bool]]) -> None:
        """Decode up to `max_new_tokens` steps; `on_step(tokens)` gets each step's token per row, in
        order, and answers which rows are done. Stops once every row is done."""
        rows, width = input_ids.shape
        sequences = torch.full((rows, width + max_new_tokens), self._pad, dtype=torch.long, device=input_ids.device)
        sequences[:, :width] = input_ids
        positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        inputs = self._model.prepare_inputs_for_generation(
            input_ids, past_key_values=cache, attention_mask=attention_mask, position_ids=positions,
            use_cache=True, is_first_iteration=True)
        logits = self._model(**inputs, return_dict=True).logits[:, -1]
        step_mask = self._decode_mask(attention_mask, cache)
        position = positions[:, -1:] + 1
        pending: list[tuple[torch.Tensor, torch.cuda.Event | None]] = []
        for step in range(max_new_tokens):
            tokens = self._choose(logits, sequences[:, :width + step], settings)
            sequences[:, width + step] = tokens
            pending.append(_to_host(tokens))
            if step + 1 < max_new_tokens:  # launch the next step before reading this one back
                step_mask[:, :, :, width + step] = True
                logits = self._model(input_ids=tokens[:, None], position_ids=position, attention_mask=step_mask,
                                     past_key_values=cache, use_cache=True, return_dict=True).logits[:, -1]
                position = position + 1
            if all(on_step(_read(pending.pop(0)))):
                return

    def _decode_mask(self, attention_mask: torch.Tensor, cache: Any) -> torch.Tensor:
        """The one-token step's mask over the whole cache: the prompt's real tokens, then each new one."""
        rows, width = attention_mask.shape
        length = cache.length
        mask = torch.zeros((rows, 1, 1, length), dtype=torch.bool, device=attention_mask.device)
        mask[:, 0, 0, :width] = attention_mask.bool()
        return mask

    def _choose(self, logits: torch.Tensor, sequences: torch.Tensor, settings: GenerationSettings) -> torch.Tensor:
        scores = self._processors(sequences, logits.float())
        if not settings.do_sample:
            return scores.argmax(dim=-1)
        return torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1).squeeze(1)


def _to_host(tokens: torch.Tensor) -> tuple[torch.Tensor, torch.cuda.Event | None]:
    """Start copying a step's tokens to the host; read them with `_read`."""
    if tokens.device.type != "cuda":
        return tokens, None
    host = torch.empty(tokens.shape, dtype=tokens.dtype, pin_memory=True)
    host.copy_(tokens, non_blocking=True)
    event = torch.cuda.Event()
    event.record()
    return host, event


def _read(pending: tuple[torch.Tensor, torch.cuda.Event | None]) -> list[int]:
    host, event = pending
    if event is not None:
        event.synchronize()  # waits without the GIL
    return [int(token) for token in host.tolist()]
