"""Which model is loaded: loads the registry's default in the background and reports its state."""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from llm.engine import TransformersEngine
from llm.loader import load_model
from llm.registry import ModelRegistry, ModelSpec

log = logging.getLogger(__name__)

_loaded: dict[tuple[str, str, str], TransformersEngine] = {}
_loaded_lock = threading.Lock()


def shared_engine(spec: ModelSpec, device: str, dtype: str, cache_dir: Path) -> TransformersEngine:
    """One copy of a model per process and setting (tests build many apps; they load it once)."""
    key = (spec.id, device, dtype)
    with _loaded_lock:
        if key not in _loaded:
            model, tokenizer = load_model(spec, device, dtype, cache_dir)
            _loaded[key] = TransformersEngine(spec, model, tokenizer, device)
        return _loaded[key]


class ModelManager:
    """States per model id: loading, ready, active, failed (GET /models shows them)."""

    def __init__(self, registry: ModelRegistry, device: str, dtype: str, cache_dir: Path) -> None:
        self._registry = registry
        self.device, self.dtype = device, dtype
        self._cache_dir = cache_dir
        self._states: dict[str, str] = {}
        self._errors: dict[str, str] = {}
        self._active: TransformersEngine | None = None
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._started = False

    def start(self) -> None:
        """Load the default model on a background thread (once)."""
        with self._lock:
            if self._started:
                return
            self._started = True
        threading.Thread(target=self._load_default, name="model-loader", daemon=True).start()

    def wait_ready(self, timeout: float | None = None) -> bool:
        return self._ready.wait(timeout)

    def engine(self) -> TransformersEngine | None:
        return self._active

    @property
    def active_id(self) -> str:
        return self._active.spec.id if self._active else self._registry.default.id

    def describe(self) -> list[dict[str, Any]]:
        """Every registry entry with its state, for GET /models."""
        return [
            {
                "id": spec.id,
                "name": spec.name,
                "backend": spec.backend,
                "context_length": spec.context_length,
                "default": spec.default,
                "loaded": self._states.get(spec.id) in ("ready", "active"),
                "state": self._states.get(spec.id, "available"),
                "error": self._errors.get(spec.id),
            }
            for spec in self._registry.all()
        ]

    def _load_default(self) -> None:
        spec = self._registry.default
        self._states[spec.id] = "loading"
        try:
            engine = shared_engine(spec, self.device, self.dtype, self._cache_dir)
        except Exception as exc:  # noqa: BLE001 - a failed load is a state to report, not a crash
            log.exception("loading model %s failed", spec.id)
            self._states[spec.id], self._errors[spec.id] = "failed", f"{type(exc).__name__}: {exc}"[:500]
            return
        self._active = engine
        self._states[spec.id] = "active"
        self._ready.set()
        log.info("model %s is active on %s (%s)", spec.id, self.device, self.dtype)
