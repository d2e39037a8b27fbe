"""The llama.cpp engine: a GGUF file decoded by llama.cpp, many sequences in one batch per step.

Why: on CPU, transformers decodes SmolLM2-135M at ~11-20 tok/s, launching hundreds of small ops
per token; llama.cpp runs the 4-bit file near the memory bound. llama-cpp-python's high-level
`Llama` runs one sequence at a time, so this engine drives its low-level API itself: one context
per kind of work, one sequence id per running request (one per beam in beam search), and one
`llama_decode` call per context and step carrying the next token of every live sequence. Token choice
(greedy, sampling, beam search) is `llm.sampling` in numpy, so the adaptive table means the same
on both engines; the prompt is the tokenizer's own chat template, as in the transformers engine.
"""
from __future__ import annotations

import ctypes
import logging
import os
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from llm.engine import (
    EncodedPrompt,
    GenerationRequest,
    GenerationResult,
    Prompt,
    common_prefix,
    prompt_ids,
    send_new_text,
    tidy,
)
from llm.faithful import spared_tokens
from llm.registry import ModelSpec
from llm.sampling import Beam, BeamSearch, TokenPicker

log = logging.getLogger(__name__)

PREFILL_CHUNK = 512  # prompt tokens per llama_decode call (n_batch)
MAX_SEQUENCES = 64  # 8 requests x 3 beams x 2 (a beam's next sequence is taken before its old one is freed)
SEPARATE_SEQUENCES = 8  # greedy/sampled requests at once in the context of separate streams
SEPARATE_CELLS = 3072  # KV cells of each of those streams (prompt and answer); longer ones use the shared context


class LlamaCppUnavailable(RuntimeError):
    """llama-cpp-python is not installed, or the file could not be loaded."""


@dataclass
class _Run:
    """One request's state inside a generate call."""

    request: GenerationRequest
    picker: TokenPicker | None  # greedy or sampling
    search: BeamSearch | None  # beam search
    context: "_Context"
    seq_id: int = -1  # greedy/sampling: its KV sequence
    tokens: list[int] = field(default_factory=list)
    streamed: str = ""
    agreed: int = 0
    finish: str | None = None

    @property
    def prompt_length(self) -> int:
        return self.request.prompt.tokens

    def sequences(self) -> list[tuple[int, int, int]]:
        """(sequence id, last token, its position) for each live sequence of this request."""
        start = self.prompt_length
        if self.search is not None:
            return [(beam.seq_id, beam.tokens[-1], start + len(beam.tokens) - 1) for beam in self.search.beams]
        return [(self.seq_id, self.tokens[-1], start + len(self.tokens) - 1)]


class LlamaCppEngine:
    """Owns one llama.cpp model and context. Not thread-safe by design: the scheduler is its only caller."""

    name = "llama.cpp"
    mixes_settings = True  # each run picks its own tokens

    def __init__(self, spec: ModelSpec, model_path: str, tokenizer: Any, context_tokens: int,
                 threads: int | None = None) -> None:
        self.spec, self.tokenizer, self.device = spec, tokenizer, "cpu"
        self._lib = _library()
        lib = self._lib
        self._model = lib.llama_model_load_from_file(model_path.encode(), lib.llama_model_default_params())
        if not self._model:
            raise LlamaCppUnavailable(f"llama.cpp could not load {model_path}")
        threads = threads or _cores()
        try:
            # Beams of one request share their prompt's cells, so they need one unified cache; in a
            # unified cache every token attends over every sequence's cells (masked), which made 8
            # concurrent 450-token answers decode at 81 tok/s against 176 with a stream per sequence.
            self._shared = _Context(lib, self._model, context_tokens, MAX_SEQUENCES, True, threads)
            self._separate = _Context(lib, self._model, SEPARATE_SEQUENCES * min(SEPARATE_CELLS, spec.context_length),
                                      SEPARATE_SEQUENCES, False, threads)
        except LlamaCppUnavailable:
            lib.llama_model_free(self._model)
            raise
        self.context_tokens = context_tokens
        vocab = lib.llama_model_get_vocab(self._model)
        self._vocab_size = lib.llama_vocab_n_tokens(vocab)
        self._end_tokens = frozenset(token for token in range(self._vocab_size) if lib.llama_vocab_is_eog(vocab, token))
        # Freed with the engine (after a swap released it and its last request finished), not at exit.
        weakref.finalize(self, _free, lib, [self._shared.release, self._separate.release], self._model).atexit = False

    def encode(self, messages: Prompt) -> EncodedPrompt:
        ids = prompt_ids(self.tokenizer, messages)
        return EncodedPrompt(ids, len(ids))

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def generate(self, batch: list[GenerationRequest]) -> list[GenerationResult | Exception]:
        """Run the requests together, in groups that fit the context; one result per request
        (a request too long for the context fails alone)."""
        results: dict[int, GenerationResult | Exception] = {}
        fitting: list[tuple[int, GenerationRequest]] = []
        for index, request in enumerate(batch):
            if self._cells(request) > self.context_tokens:
                results[index] = ValueError(f"a prompt of {request.prompt.tokens} tokens and its answer do not "
                                            f"fit the {self.context_tokens}-token context")
            else:
                fitting.append((index, request))
        for group in self._groups(fitting):
            started = time.monotonic()
            runs = [self._start(request, context) for (_, request), context in group]
            try:
                self._decode_until_done(runs)
            finally:
                self._shared.clear()
                self._separate.clear()
            results.update({index: self._result(run, started)
                            for ((index, _), _context), run in zip(group, runs, strict=True)})
        return [results[index] for index in range(len(batch))]

    @staticmethod
    def _cells(request: GenerationRequest) -> int:
        """KV cells a request may need: its prompt, and each beam's answer."""
        return request.prompt.tokens + request.settings.num_beams * (request.settings.max_new_tokens + 1)

    def _groups(self, batch: list[tuple[int, GenerationRequest]]
                ) -> list[list[tuple[tuple[int, GenerationRequest], "_Context"]]]:
        """Consecutive requests that fit together, each with its context: a stream of its own for
        one sequence that fits one, else the shared context (beams, long prompts)."""
        groups: list[list[tuple[tuple[int, GenerationRequest], _Context]]] = []
        separate = shared_cells = shared_sequences = 0
        for item in batch:
            request = item[1]
            need, beams = self._cells(request), request.settings.num_beams
            alone = beams == 1 and need <= self._separate.cells_per_sequence
            if groups and alone and separate < self._separate.sequences:
                groups[-1].append((item, self._separate))
                separate += 1
                continue
            if (not groups or shared_cells + need > self._shared.cells
                    or shared_sequences + 2 * beams > self._shared.sequences):
                if alone:
                    groups.append([(item, self._separate)])
                    separate, shared_cells, shared_sequences = 1, 0, 0
                    continue
                groups.append([])
                separate = shared_cells = shared_sequences = 0
            groups[-1].append((item, self._shared))
            shared_cells, shared_sequences = shared_cells + need, shared_sequences + 2 * beams
        return groups

    def _start(self, request: GenerationRequest, context: "_Context") -> _Run:
        settings = request.settings
        spared = spared_tokens(self.tokenizer, request.prompt.ids, settings.repetition_penalty)
        if settings.num_beams > 1:
            return _Run(request, None, BeamSearch(settings.num_beams, settings.repetition_penalty, self._end_tokens,
                                                  spared), context)
        return _Run(request, TokenPicker(settings, min(self._end_tokens), spared), None, context)

    def _decode_until_done(self, runs: list[_Run]) -> None:
        for run in runs:
            seq_id = run.context.take_id()
            first = run.context.prefill(run.request.prompt.ids, seq_id, self._vocab_size)
            run.request.mark_first_token()
            if run.search is not None:
                run.search.beams = [Beam([], 0.0, seq_id)]
                self._beam_step(run, [first])
            else:
                run.seq_id = seq_id
                self._pick(run, first)
        while live := [run for run in runs if run.finish is None]:
            for context in (self._shared, self._separate):
                here = [run for run in live if run.context is context]
                if not here:
                    continue
                rows = context.step([run.sequences() for run in here], self._vocab_size)
                for run, per_sequence in zip(here, rows, strict=True):
                    if run.search is not None:
                        self._beam_step(run, per_sequence)
                    else:
                        self._pick(run, per_sequence[0])

    def _pick(self, run: _Run, logits: np.ndarray) -> None:
        assert run.picker is not None
        token = run.picker.pick(logits, run.tokens)
        if token in self._end_tokens:
            self._end(run, "stop", [run.seq_id])
            return
        run.tokens.append(token)
        run.streamed += send_new_text(self.tokenizer, run.request, run.tokens, len(run.streamed))
        self._check_limits(run, run.tokens, [run.seq_id])

    def _beam_step(self, run: _Run, logits: list[np.ndarray]) -> None:
        search, context = run.search, run.context
        assert search is not None
        chosen = search.step(logits)
        old_ids = [beam.seq_id for beam in search.beams]
        new_ids = [context.take_id() for _ in chosen]
        for (parent, _token, _score), seq_id in zip(chosen, new_ids, strict=True):
            context.copy(old_ids[parent], seq_id)
        context.remove(old_ids)
        search.advance(chosen, new_ids)
        self._stream_agreed(run)
        live_ids = [beam.seq_id for beam in search.beams]
        if search.beams and run.request.reads_text:
            run.request.ended_in(self.tokenizer.decode(search.beams[0].tokens, skip_special_tokens=True).lstrip())
        if search.done or not search.beams:
            self._end(run, "stop", live_ids)
        else:
            self._check_limits(run, search.beams[0].tokens, live_ids)
        if run.finish is not None:
            run.tokens = search.close()

    def _stream_agreed(self, run: _Run) -> None:
        """Send the tokens every live beam and every ended hypothesis agree on (see BeamPrefixStreamer)."""
        search, request = run.search, run.request
        if search is None or request.on_token is None:
            return
        agreed = common_prefix([beam.tokens for beam in search.beams] + search.ended)[:request.settings.max_new_tokens]
        if len(agreed) > run.agreed:
            run.agreed = len(agreed)
            run.streamed += send_new_text(self.tokenizer, request, agreed, len(run.streamed))

    def _check_limits(self, run: _Run, tokens: list[int], seq_ids: list[int]) -> None:
        request = run.request
        if request.stopped:  # a stop string or the sentence limit (send_new_text, ended_in) or a loop
            self._end(run, "stop", seq_ids)
        elif request.cancelled.is_set():
            self._end(run, "cancelled", seq_ids)
        elif time.monotonic() > request.deadline:
            self._end(run, "timeout", seq_ids)
        elif len(tokens) >= request.settings.max_new_tokens:
            self._end(run, "length", seq_ids)

    @staticmethod
    def _end(run: _Run, finish: str, seq_ids: list[int]) -> None:
        run.finish = finish
        run.context.remove(seq_ids)

    def _result(self, run: _Run, started: float) -> GenerationResult:
        request = run.request
        text = tidy(request, self.tokenizer.decode(run.tokens, skip_special_tokens=True))
        if run.search is not None and request.on_token is not None:
            if text.startswith(run.streamed) and len(text) > len(run.streamed):
                request.on_token(text[len(run.streamed):])
            elif not text.startswith(run.streamed):
                log.error("beam streaming sent text that is not the start of the final answer")
        return GenerationResult(text, request.prompt.tokens, len(run.tokens), run.finish or "stop", request.settings,
                                round(time.monotonic() - started, 3), *request.figures(len(run.tokens)))


class _Context:
    """One llama.cpp context (KV cache) and the sequence ids free in it."""

    def __init__(self, lib: Any, model: Any, cells: int, sequences: int, unified: bool, threads: int) -> None:
        params = lib.llama_context_default_params()
        params.n_ctx = cells
        params.n_batch = params.n_ubatch = PREFILL_CHUNK
        params.n_seq_max = sequences
        params.kv_unified = unified
        params.n_threads = params.n_threads_batch = threads
        params.no_perf = True
        self._lib, self.cells, self.sequences = lib, cells, sequences
        self.cells_per_sequence = cells if unified else cells // sequences
        self._context = lib.llama_init_from_model(model, params)
        if not self._context:
            raise LlamaCppUnavailable(f"llama.cpp could not make a {cells}-cell context")
        self._memory = lib.llama_get_memory(self._context)
        self._batch = lib.llama_batch_init(PREFILL_CHUNK, 0, 1)
        self._free_ids: list[int] = []
        self.clear()

    def release(self) -> None:
        self._lib.llama_batch_free(self._batch)
        self._lib.llama_free(self._context)

    def clear(self) -> None:
        self._lib.llama_memory_clear(self._memory, True)
        self._free_ids = list(range(self.sequences - 1, -1, -1))

    def take_id(self) -> int:
        return self._free_ids.pop()

    def copy(self, source: int, target: int) -> None:
        self._lib.llama_memory_seq_cp(self._memory, source, target, -1, -1)

    def remove(self, seq_ids: list[int]) -> None:
        for seq_id in seq_ids:
            self._lib.llama_memory_seq_rm(self._memory, seq_id, -1, -1)
            self._free_ids.append(seq_id)

    def prefill(self, ids: list[int], seq_id: int, vocab_size: int) -> np.ndarray:
        """Decode a prompt into `seq_id` in chunks; the logits after its last token."""
        if not ids:
            raise ValueError("the prompt is empty")
        for start in range(0, len(ids), PREFILL_CHUNK):
            chunk = ids[start:start + PREFILL_CHUNK]
            last = start + len(chunk) == len(ids)
            self._decode([(token, start + offset, seq_id, last and offset == len(chunk) - 1)
                          for offset, token in enumerate(chunk)])
        return self._logits((len(ids) - 1) % PREFILL_CHUNK, vocab_size)

    def step(self, sequences: list[list[tuple[int, int, int]]], vocab_size: int) -> list[list[np.ndarray]]:
        """One token for every (sequence id, token, position) in one call; the logits, per run, per sequence."""
        self._decode([(token, position, seq_id, True) for per_run in sequences for seq_id, token, position in per_run])
        rows: list[list[np.ndarray]] = []
        index = 0
        for per_run in sequences:
            rows.append([self._logits(index + offset, vocab_size) for offset in range(len(per_run))])
            index += len(per_run)
        return rows

    def _decode(self, entries: list[tuple[int, int, int, bool]]) -> None:
        """(token, position, sequence id, want logits) entries in one llama_decode call."""
        batch = self._batch
        batch.n_tokens = len(entries)
        for index, (token, position, seq_id, wanted) in enumerate(entries):
            batch.token[index] = token
            batch.pos[index] = position
            batch.n_seq_id[index] = 1
            batch.seq_id[index][0] = seq_id
            batch.logits[index] = wanted
        status = self._lib.llama_decode(self._context, batch)
        if status != 0:
            raise RuntimeError(f"llama_decode failed with status {status}")

    def _logits(self, index: int, vocab_size: int) -> np.ndarray:
        pointer = self._lib.llama_get_logits_ith(self._context, index)
        return np.ctypeslib.as_array(ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float)), shape=(vocab_size,)).copy()


def _free(lib: Any, releases: list[Callable[[], None]], model: Any) -> None:
    for release in releases:
        release()
    lib.llama_model_free(model)


QUANTIZATIONS = {"q8_0": 7, "q4_0": 2, "f16": 1}  # llama.cpp's LLAMA_FTYPE_MOSTLY_* numbers


def repacked(source: Path, quantization: str, cache_dir: Path) -> Path:
    """`source` re-quantized once to `quantization`, kept in `cache_dir` (written aside, then renamed).

    Why: llama.cpp's batched CPU kernels (tinyBLAS) cover Q8_0, Q4_0 and F16 but not Q4_1, the
    type the packaged SmolLM2 file uses. Measured here (2 cores, AVX2): Q4_1 decodes 129 tok/s for
    one sequence and 193 tok/s aggregate for eight; the same weights as Q8_0, 119 and 273, with a
    440-token prompt read in 0.9 s instead of 1.7 s. Q4_1 -> Q8_0 keeps every weight to within
    0.4% of its range."""
    target = cache_dir / f"{source.stem}.{quantization.upper()}.gguf"
    if target.exists():
        return target
    lib = _library()
    cache_dir.mkdir(parents=True, exist_ok=True)
    draft = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}")
    params = lib.llama_model_quantize_default_params()
    params.ftype, params.allow_requantize, params.nthread = QUANTIZATIONS[quantization], True, _cores()
    if lib.llama_model_quantize(str(source).encode(), str(draft).encode(), ctypes.byref(params)) != 0:
        draft.unlink(missing_ok=True)
        raise LlamaCppUnavailable(f"llama.cpp could not re-quantize {source} to {quantization}")
    draft.replace(target)
    return target


def _library() -> Any:
    """The llama_cpp module, its log sent to ours; LlamaCppUnavailable when it is not installed."""
    try:
        import llama_cpp
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise LlamaCppUnavailable("llama-cpp-python is not installed (make venv builds it)") from exc
    global _log_callback
    if _log_callback is None:
        _log_callback = llama_cpp.llama_log_callback(_forward_log)
        llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))
        llama_cpp.llama_backend_init()
    return llama_cpp


_log_callback: Any = None  # kept alive: llama.cpp holds a pointer to it


def _forward_log(level: int, text: bytes, _user_data: Any) -> None:
    """llama.cpp's errors (ggml level 4; 5 continues a line) as our warnings, the rest at debug."""
    message = text.decode("utf-8", "replace").rstrip()
    if message:
        log.log(logging.WARNING if level == 4 else logging.DEBUG, "llama.cpp: %s", message)


def _cores() -> int:
    """Cores this process may use: ggml's thread pool spins, so more threads than cores only hurts."""
    return max(1, len(os.sched_getaffinity(0)))
