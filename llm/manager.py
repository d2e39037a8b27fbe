"""Which model is loaded: loads the registry's default in the background and reports its state."""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.errors import NotFound
from llm.engine import Engine, GenerationRequest, TransformersEngine
from llm.errors import ModelLoadFailed, ModelNotReady
from llm.llamacpp_engine import LlamaCppEngine, LlamaCppUnavailable, repacked
from llm.loader import gguf_path, load_model, load_tokenizer
from llm.registry import ModelRegistry, ModelSpec
from llm.remote import OpenAIEngine, RemoteOptions
from llm.settings import GenerationOverrides, adaptive_settings
from monitoring.system import SystemMonitor

if TYPE_CHECKING:
    from llm.static_decode import StaticDecoder

log = logging.getLogger(__name__)

_loaded: dict[tuple[str, str, str, str], Engine] = {}
_loaded_lock = threading.Lock()
LLAMA_CPP_CONTEXT_TOKENS = 32768  # KV cells shared by all running sequences (~23 KB each for SmolLM2-135M)


def shared_engine(spec: ModelSpec, device: str, dtype: str, cache_dir: Path, static_decode: str = "auto") -> Engine:
    """One copy of a model per process and setting (tests build many apps; they load it once).

    `static_decode` (LLM_STATIC_DECODE) is for the transformers engine: "auto" decodes from a
    static cache with CUDA graphs on a GPU and as before on the CPU; "on" uses the static cache on
    the CPU too; "off" never (llm/static_decode.py)."""
    key = (spec.id, device, dtype, static_decode)
    with _loaded_lock:
        if key not in _loaded:
            _loaded[key] = _local_engine(spec, device, dtype, cache_dir, static_decode)
        return _loaded[key]


def _local_engine(spec: ModelSpec, device: str, dtype: str, cache_dir: Path, static_decode: str) -> Engine:
    """A llama.cpp entry runs on llama.cpp on CPU. On CUDA, and where llama-cpp-python is not
    installed, the same GGUF runs on transformers (the llama.cpp build here is CPU-only)."""
    if spec.backend == "llama.cpp" and not device.startswith("cuda"):
        try:
            path = gguf_path(spec, cache_dir)
            if spec.quantization:
                path = repacked(path, spec.quantization, cache_dir)
            return LlamaCppEngine(spec, str(path), load_tokenizer(spec, cache_dir),
                                  context_tokens=min(LLAMA_CPP_CONTEXT_TOKENS, 2 * spec.context_length))
        except LlamaCppUnavailable as exc:
            log.warning("%s; %s runs on transformers instead (slower)", exc, spec.id)
    model, tokenizer = load_model(spec, device, dtype, cache_dir)
    return TransformersEngine(spec, model, tokenizer, device, _static_decoder(model, device, static_decode))


def _static_decoder(model: Any, device: str, mode: str) -> StaticDecoder | None:
    """The engine's StaticDecoder, or None where LLM_STATIC_DECODE leaves it off."""
    if mode == "off" or (mode == "auto" and not device.startswith("cuda")):
        return None
    from llm.static_decode import StaticDecoder

    return StaticDecoder(model)


class ModelManager:
    """States per model id: loading, ready, active, failed (GET /models shows them).

    A swap loads the new model beside the active one, checks that it generates, then switches:
    requests already accepted finish on the model that accepted them, new ones go to the new
    model, so none is lost. The previous model stays loaded (state `ready`) for one instant
    rollback; the one before it is released.
    """

    def __init__(self, registry: ModelRegistry, device: str, dtype: str, cache_dir: Path,
                 static_decode: str = "auto", memory_budget_bytes: int = 0) -> None:
        self._registry = registry
        self.device, self.dtype, self._static_decode = device, dtype, static_decode
        self._cache_dir = cache_dir
        self._states: dict[str, str] = {}
        self._errors: dict[str, str] = {}
        self._engine_names: dict[str, str] = {}  # what actually runs each loaded model
        self._active: Engine | None = None
        self._swap_lock = threading.Lock()
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._started = False
        # Models loaded for requests that name them (beside the active one), least recently used first
        self._extra: OrderedDict[str, Engine] = OrderedDict()
        self._footprints: dict[str, int] = {}  # bytes each took when it loaded (RSS + GPU)
        self._progress: dict[str, float] = {}  # of models loading now, 0-1
        self._budget = memory_budget_bytes  # LLM_MEMORY_BUDGET_MB; 0: no limit
        self._extra_lock = threading.Lock()

    def start(self) -> None:
        """Load the default model on a background thread (once)."""
        with self._lock:
            if self._started:
                return
            self._started = True
        threading.Thread(target=self._load_default, name="model-loader", daemon=True).start()

    def wait_ready(self, timeout: float | None = None) -> bool:
        return self._ready.wait(timeout)

    def engine(self) -> Engine | None:
        return self._active

    @property
    def active_id(self) -> str:
        return self._active.spec.id if self._active else self._registry.default.id

    def engine_for(self, model_id: str) -> Engine:
        """The engine of `model_id`: the active one, or one loaded beside it for requests that name
        it. A model not loaded yet starts loading in the background and ModelNotReady (503, with
        its progress) is raised; NotFound for an id models.json does not have."""
        active = self._active
        if active is not None and active.spec.id == model_id:
            return active
        spec = self._registry.get(model_id)
        if spec is None:
            raise NotFound(f"No model {model_id!r} in models.json")
        with self._extra_lock:
            engine = self._extra.get(model_id)
            if engine is not None:
                self._extra.move_to_end(model_id)
                return engine
            if self._states.get(model_id) != "loading":
                self._states[model_id], self._progress[model_id] = "loading", 0.0
                threading.Thread(target=self._load_extra, args=(spec,), name=f"load-{model_id}", daemon=True).start()
        raise ModelNotReady(f"Model {model_id!r} is loading ({self._progress.get(model_id, 0.0):.0%}); retry shortly",
                            retry_after_s=5)

    def knows(self, model_id: str) -> bool:
        return self._registry.get(model_id) is not None

    def ids(self) -> list[str]:
        return [spec.id for spec in self._registry.all()]

    def progress(self) -> dict[str, float]:
        """Each model loading now, with how far it is (0-1)."""
        return dict(self._progress)

    def _load_extra(self, spec: ModelSpec) -> None:
        """Load a model for requests that name it, within the memory budget: the least recently
        used of the others loaded that way is released first while the new one would not fit."""
        self._make_room(self._footprints.get(spec.id) or estimated_bytes(spec, self._cache_dir))
        self._progress[spec.id] = 0.2
        before = _memory_in_use()
        engine = self._load(spec)
        if engine is not None:
            self._states[spec.id], self._progress[spec.id] = "loading", 0.8  # ready once it answered
            try:
                self._check_generates(engine)
            except ModelLoadFailed:
                engine = None
        if engine is None:
            self._progress.pop(spec.id, None)
            return
        self._footprints[spec.id] = max(_memory_in_use() - before, 1)
        with self._extra_lock:
            self._extra[spec.id] = engine
            self._states[spec.id] = "ready"
            self._progress.pop(spec.id, None)
        log.info("model %s loaded beside %s (%.0f MiB)", spec.id, self.active_id, self._footprints[spec.id] / 2**20)

    def _make_room(self, needed: int) -> None:
        if self._budget <= 0:
            return
        with self._extra_lock:
            in_use = self._footprints.get(self.active_id, 0) + sum(self._footprints.get(i, 0) for i in self._extra
                                                                     if i != self.active_id)
            for released in [model_id for model_id in self._extra if model_id != self.active_id]:  # LRU first
                if in_use + needed <= self._budget:
                    break
                del self._extra[released]
                in_use -= self._footprints.get(released, 0)
                self._states[released] = "available"
                _forget(released)
                log.info("released model %s (least recently used) to make room within LLM_MEMORY_BUDGET_MB", released)

    def failed(self) -> str | None:
        """A model whose last load failed (the alerts' model_failed), if any."""
        return next((model_id for model_id, state in self._states.items() if state == "failed"), None)

    def describe(self) -> list[dict[str, Any]]:
        """Every registry entry with its state, for GET /models."""
        return [
            {
                "id": spec.id,
                "name": spec.name,
                "backend": spec.backend,
                "engine": self._engine_names.get(spec.id),
                "context_length": spec.context_length,
                "default": spec.default,
                "loaded": self._states.get(spec.id) in ("ready", "active"),
                "state": self._states.get(spec.id, "available"),
                "progress": self._progress.get(spec.id, 0.0) if self._states.get(spec.id) == "loading"
                else 1.0 if self._states.get(spec.id) in ("ready", "active") else None,
                "error": self._errors.get(spec.id),
            }
            for spec in self._registry.all()
        ]

    def swap(self, model_id: str) -> dict[str, Any]:
        """Make `model_id` the active model without losing a request; returns what changed."""
        spec = self._registry.get(model_id)
        if spec is None:
            raise NotFound(f"No model {model_id!r} in models.json")
        with self._swap_lock:
            started = time.monotonic()
            previous = self._active
            if previous is not None and previous.spec.id == model_id:
                return {"active": model_id, "previous": model_id, "swap_seconds": 0.0}
            self._activate(spec, "loaded")
            if previous is not None:
                self._states[previous.spec.id] = "ready"
            self._release_older(keep={model_id, previous.spec.id if previous else ""})
            return {"active": model_id, "previous": previous.spec.id if previous else None,
                    "swap_seconds": round(time.monotonic() - started, 3)}

    def reload(self) -> Engine:
        """A fresh engine for the active model (the default while none is active), checked like a
        swap's, made active; the old one is released. ModelLoadFailed when it cannot be loaded."""
        with self._swap_lock:
            spec = self._active.spec if self._active is not None else self._registry.default
            _forget(spec.id)
            return self._activate(spec, "reloaded")

    def _activate(self, spec: ModelSpec, done: str) -> Engine:
        """Load `spec`, check that it answers, and make it the active engine (under the swap lock);
        ModelLoadFailed ("could not be `done`") when it cannot be loaded."""
        engine = self._load(spec)
        if engine is None:
            raise ModelLoadFailed(f"Model {spec.id!r} could not be {done}: {self._errors.get(spec.id)}")
        self._check_generates(engine)
        self._active = engine
        self._states[spec.id] = "active"
        self._ready.set()
        return engine

    def _load_default(self) -> None:
        before = _memory_in_use()
        engine = self._load(self._registry.default)
        self._footprints[self._registry.default.id] = max(_memory_in_use() - before, 1)
        if engine is not None and self._active is None:
            self._active = engine
            self._states[engine.spec.id] = "active"
            self._ready.set()
            log.info("model %s is active on %s", engine.spec.id, engine.device)

    def _load(self, spec: ModelSpec) -> Engine | None:
        self._states[spec.id] = "loading"
        self._errors.pop(spec.id, None)
        try:
            engine: Engine
            if spec.backend == "openai":
                engine = OpenAIEngine(spec, RemoteOptions.from_spec(spec))
            else:
                engine = shared_engine(spec, self.device, spec.dtype or self.dtype, self._cache_dir,
                                       self._static_decode)
        except Exception as exc:  # noqa: BLE001 - a failed load is a state to report, not a crash
            log.exception("loading model %s failed", spec.id)
            self._states[spec.id], self._errors[spec.id] = "failed", f"{type(exc).__name__}: {exc}"[:500]
            return None
        self._states[spec.id] = "ready"
        self._engine_names[spec.id] = engine.name
        return engine

    def _check_generates(self, engine: Engine) -> None:
        """A new model must answer a tiny prompt before it takes any traffic."""
        messages = [{"role": "user", "content": "Say OK."}]
        prompt = engine.encode(messages)
        settings = adaptive_settings(prompt.tokens, overrides=GenerationOverrides(num_beams=1, temperature=0,
                                                                                  max_new_tokens=4))
        result = engine.generate([GenerationRequest(messages, settings, prompt, engine)])[0]
        if isinstance(result, Exception):
            self._states[engine.spec.id], self._errors[engine.spec.id] = "failed", str(result)[:500]
            raise ModelLoadFailed(f"Model {engine.spec.id!r} did not answer a test prompt: {result}")
        if result.completion_tokens == 0 and result.finish_reason != "stop":
            self._states[engine.spec.id] = "failed"
            raise ModelLoadFailed(f"Model {engine.spec.id!r} loaded but generated nothing")

    def _release_older(self, keep: set[str]) -> None:
        for spec in self._registry.all():  # models loaded for requests that name them stay (LRU, budget)
            if spec.id not in keep and spec.id not in self._extra and self._states.get(spec.id) == "ready":
                self._states[spec.id] = "available"
                _forget(spec.id)


def _forget(model_id: str) -> None:
    """Drop a model's engines from the process's cache (the next load builds a fresh one)."""
    with _loaded_lock:
        for key in [key for key in _loaded if key[0] == model_id]:
            del _loaded[key]


def estimated_bytes(spec: ModelSpec, cache_dir: Path) -> int:
    """What a model not loaded before will take, from its GGUF file: about its size on llama.cpp
    (twice that re-quantized to 8 bits), four times it on transformers (dequantized to 16 bits);
    a remote model takes nothing here. Once loaded, its measured footprint is used instead."""
    if spec.backend == "openai":
        return 0
    try:
        size = gguf_path(spec, cache_dir).stat().st_size
    except Exception:  # noqa: BLE001 - a source that is not a GGUF file: assume a small model
        return 512 * 2**20
    if spec.backend == "llama.cpp":
        return size * (2 if spec.quantization else 1)
    return size * 4


def _memory_in_use() -> int:
    """This process's RSS plus what PyTorch holds on the GPUs (the leak watch's readings, summed)."""
    return sum(SystemMonitor().memory_readings().values())
