"""Decoding from a preallocated KV cache, each decode step replayed as a CUDA graph.

A decode step of a small model is launch-bound: SmolLM2's 30 layers are ~400 small kernels per
token, each launched from Python, so an H200 decoded 17 tokens/s through `generate` with its
growing (dynamic) cache. vLLM's answer, and transformers' static cache with `torch.compile`, is the
same idea: keep every tensor a decode step touches at a fixed address and shape, record the step
once as a CUDA graph, and replay it (one launch) for every token.

Here that is done beneath `generate`, so greedy, sampling, beam search, streaming, stopping and
cancellation stay as they are:

- `InPlaceStaticCache` is transformers' `StaticCache` whose beam reordering writes into its own
  tensors (transformers' reorder allocates new ones, which would leave a recorded graph reading
  stale memory).
- `StaticDecoder.cache` hands out one such cache per shape bucket, reset and reused across calls:
  rows (requests x beams) are padded up to a power of two and the cache length to a power of two
  of at least 512, so a handful of shapes serve every request.
- `StaticDecoder` replaces the model's `forward` with a dispatcher: a one-token step on one of its
  caches on CUDA replays the graph recorded for that cache and input shapes (recording it on first
  use, ~2 eager steps); everything else, the prefill included, runs eagerly as before.

On the CPU the same cache and buckets are used without graphs (tests check that greedy tokens
match the plain path there), and `LLM_STATIC_DECODE=off` turns the whole path off.
"""
from __future__ import annotations

import functools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import torch
from transformers import StaticCache

log = logging.getLogger(__name__)

MIN_CACHE_TOKENS = 512


class InPlaceStaticCache(StaticCache):
    """A static cache whose beam-search reordering keeps every tensor where it is."""

    def __init__(self, config: Any, max_cache_len: int) -> None:
        super().__init__(config=config, max_cache_len=max_cache_len)
        self.length = max_cache_len

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        for layer in _layers(self):
            if getattr(layer, "is_initialized", False):
                index = beam_idx.to(layer.keys.device)
                layer.keys.copy_(layer.keys.index_select(0, index))
                layer.values.copy_(layer.values.index_select(0, index))


@dataclass(frozen=True)
class DecodeShapes:
    """How request counts and lengths are rounded so that few shapes (caches, graphs) serve all."""

    max_rows: int = 64
    min_cache_tokens: int = MIN_CACHE_TOKENS

    def rows_for(self, requests: int) -> int:
        """Requests padded up to a power of two (1, 2, 4, 8, ...)."""
        return min(_next_power_of_two(requests), max(requests, self.max_rows))

    def cache_tokens_for(self, tokens: int) -> int:
        """Cache length for a prompt plus its new tokens: a power of two, at least `min_cache_tokens`."""
        return _next_power_of_two(max(tokens, self.min_cache_tokens))


def _next_power_of_two(value: int) -> int:
    return 1 << max(0, value - 1).bit_length()


class StaticDecoder:
    """Reusable static caches per shape for one model, and the graphs recorded on them.

    Not thread-safe by design, like the engine that owns it: one scheduler thread generates."""

    def __init__(self, model: Any, shapes: DecodeShapes | None = None, graphs: bool = True,
                 max_caches: int = 12) -> None:
        self._model, self.shapes, self._max_caches = model, shapes or DecodeShapes(), max_caches
        self._caches: OrderedDict[tuple[int, int], InPlaceStaticCache] = OrderedDict()
        self.graphs: GraphedDecode | None = None
        # bitsandbytes' 8-bit matmul reads its outliers back to the host: it cannot be captured
        if graphs and model.device.type == "cuda" and not getattr(model, "is_loaded_in_8bit", False):
            self.graphs = GraphedDecode(model.forward)
            model.forward = self.graphs.dispatcher()

    def cache(self, rows: int, tokens: int) -> InPlaceStaticCache:
        """An empty cache for `rows` sequences of up to `tokens` positions (rounded up)."""
        key = (rows, self.shapes.cache_tokens_for(tokens))
        cache = self._caches.pop(key, None)
        if cache is None:
            cache = InPlaceStaticCache(config=self._model.config, max_cache_len=key[1])
            while len(self._caches) >= self._max_caches:
                _, evicted = self._caches.popitem(last=False)
                if self.graphs is not None:
                    self.graphs.forget(evicted)
        else:
            with torch.inference_mode():  # its tensors were made under inference mode, by generate
                cache.reset()
        self._caches[key] = cache  # most recently used last
        return cache

    def cached_shapes(self) -> list[tuple[int, int]]:
        """(rows, cache tokens) of the caches kept, least recently used first."""
        return list(self._caches)


class GraphedDecode:
    """The model's forward, with one-token steps on an `InPlaceStaticCache` replayed as CUDA graphs.

    A graph is keyed by its cache and by the shapes and dtypes of its tensor inputs (and the
    values of the others); inputs are copied into the graph's own tensors before each replay.
    Recording runs the step once on a side stream (kernels and workspaces warmed), then captures
    it; the cache's positions are put back after each, so the replay writes where the step would."""

    def __init__(self, eager: Callable[..., Any]) -> None:
        self._eager = eager
        self._graphs: dict[tuple[Hashable, ...], _Graph | None] = {}  # None: could not be recorded
        self._pool: Any = None
        self._lock = threading.Lock()
        self._failed = False  # a failed capture leaves its memory pool unusable: no further tries
        self.recorded, self.record_seconds = 0, 0.0

    def dispatcher(self) -> Callable[..., Any]:
        def forward(*args: Any, **kwargs: Any) -> Any:
            return self(*args, **kwargs)

        return functools.update_wrapper(forward, self._eager)  # keeps the signature generate inspects

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        key = None if args else self._key(kwargs)
        if key is None:
            return self._eager(*args, **kwargs)
        with self._lock:
            if key not in self._graphs:
                self._graphs[key] = self._record(kwargs)
            graph = self._graphs[key]
        return self._eager(**kwargs) if graph is None else graph.run(kwargs)

    def forget(self, cache: InPlaceStaticCache) -> None:
        """Drop the graphs recorded on a cache that is being released."""
        with self._lock:
            for key in [key for key in self._graphs if key[0] == id(cache)]:
                del self._graphs[key]

    @staticmethod
    def _key(kwargs: dict[str, Any]) -> tuple[Hashable, ...] | None:
        """The graph key of a one-token step on an initialised static cache on CUDA; None otherwise."""
        cache, ids = kwargs.get("past_key_values"), kwargs.get("input_ids")
        if not isinstance(cache, InPlaceStaticCache) or not isinstance(ids, torch.Tensor):
            return None
        if ids.shape[-1] != 1 or not ids.is_cuda or not all(getattr(layer, "is_initialized", False)
                                                               for layer in cache.layers):
            return None
        parts: list[Hashable] = [id(cache)]
        for name, value in sorted(kwargs.items()):
            if name == "past_key_values":
                continue
            if isinstance(value, torch.Tensor):
                parts.append((name, tuple(value.shape), value.dtype, value.device))
            elif value is None or isinstance(value, (bool, int, float, str)):
                parts.append((name, value))
            else:
                return None  # an input we cannot hold still: run it eagerly
        return tuple(parts)

    def _record(self, kwargs: dict[str, Any]) -> _Graph | None:
        if self._failed:
            return None
        started = time.perf_counter()
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        try:
            graph = _Graph(self._eager, kwargs, self._pool)
        except Exception:  # noqa: BLE001 - a step that cannot be captured still runs, eagerly
            log.exception("could not record the decode step as a CUDA graph; decoding runs eagerly")
            self._failed = True
            return None
        self.recorded += 1
        self.record_seconds += time.perf_counter() - started
        return graph


class _Graph:
    """One recorded decode step: its input tensors, the graph, and the output it fills."""

    def __init__(self, eager: Callable[..., Any], kwargs: dict[str, Any], pool: Any) -> None:
        cache: InPlaceStaticCache = kwargs["past_key_values"]
        self.inputs = {name: value.clone() for name, value in kwargs.items() if isinstance(value, torch.Tensor)}
        held = {**kwargs, **self.inputs}
        positions = _positions(cache)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            eager(**held)
        torch.cuda.current_stream().wait_stream(side)
        _restore(cache, positions)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, pool=pool, capture_error_mode="thread_local"):
            self.output = eager(**held)
        _restore(cache, positions)

    def run(self, kwargs: dict[str, Any]) -> Any:
        for name, held in self.inputs.items():
            held.copy_(kwargs[name], non_blocking=True)
        self.graph.replay()
        return self.output


def _layers(cache: InPlaceStaticCache) -> list[Any]:
    """The cache's layers (static layers: keys, values and their position counter as tensors)."""
    return list(cache.layers)


def _positions(cache: InPlaceStaticCache) -> list[torch.Tensor]:
    return [layer.cumulative_length.clone() for layer in _layers(cache)]


def _restore(cache: InPlaceStaticCache, positions: list[torch.Tensor]) -> None:
    for layer, position in zip(_layers(cache), positions, strict=True):
        layer.cumulative_length.copy_(position)
