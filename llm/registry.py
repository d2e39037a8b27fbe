"""models.json -> validated model specs. Data errors are reported at start, with the entry named."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BACKENDS = ("llama.cpp", "transformers", "openai")


class ModelRegistryError(ValueError):
    """models.json is missing, malformed or contradicts itself."""


@dataclass(frozen=True)
class ModelSpec:
    id: str
    name: str
    backend: str
    source: dict[str, Any]
    context_length: int
    default: bool = False
    generation: dict[str, Any] = field(default_factory=dict)
    dtype: str | None = None  # e.g. "float32" to run a model in full precision whatever the default
    quantization: str | None = None  # llama.cpp: the GGUF re-quantized to this type (e.g. "q8_0");
    # transformers: "int8" or "nf4", weights loaded in 8 or 4 bits on CUDA (bitsandbytes)


class ModelRegistry:
    def __init__(self, specs: list[ModelSpec]) -> None:
        self._specs = {spec.id: spec for spec in specs}

    @classmethod
    def from_file(cls, path: Path) -> "ModelRegistry":
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelRegistryError(f"cannot read the model registry {path}: {exc}") from exc
        entries = data.get("models") if isinstance(data, dict) else None
        if not isinstance(entries, list) or not entries:
            raise ModelRegistryError(f"{path}: expected {{\"models\": [ ... ]}} with at least one entry")
        specs = [_spec(entry, index) for index, entry in enumerate(entries)]
        _check_consistent(specs, path)
        return cls(specs)

    def all(self) -> list[ModelSpec]:
        return list(self._specs.values())

    def get(self, model_id: str) -> ModelSpec | None:
        return self._specs.get(model_id)

    @property
    def default(self) -> ModelSpec:
        return next(spec for spec in self._specs.values() if spec.default)


def _spec(entry: Any, index: int) -> ModelSpec:
    where = f"models[{index}]"
    if not isinstance(entry, dict):
        raise ModelRegistryError(f"{where} must be an object")
    for key, kind in (("id", str), ("backend", str), ("source", dict), ("context_length", int)):
        if not isinstance(entry.get(key), kind):
            raise ModelRegistryError(f"{where}.{key} is required and must be a {kind.__name__}")
    if entry["backend"] not in BACKENDS:
        raise ModelRegistryError(f"{where}.backend must be one of {', '.join(BACKENDS)}")
    if entry["context_length"] <= 0:
        raise ModelRegistryError(f"{where}.context_length must be positive")
    if entry["backend"] == "openai":
        _check_remote_source(entry["source"], where)
    if entry["backend"] == "llama.cpp" and not str(entry["source"].get("file", "")).endswith(".gguf"):
        raise ModelRegistryError(f"{where}.source.file must name a .gguf file for the llama.cpp backend")
    return ModelSpec(
        id=entry["id"],
        name=str(entry.get("name", entry["id"])),
        backend=entry["backend"],
        source=entry["source"],
        context_length=entry["context_length"],
        default=bool(entry.get("default", False)),
        generation=dict(entry.get("generation", {})),
        dtype=_dtype(entry.get("dtype"), where),
        quantization=_quantization(entry, where),
    )


def _check_remote_source(source: dict[str, Any], where: str) -> None:
    """An `openai` entry names the server's base URL and its model; the key comes from the environment."""
    url = source.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ModelRegistryError(f"{where}.source.url must be the server's http(s) base URL, e.g. http://gpu:8000/v1")
    if not isinstance(source.get("model"), str) or not source["model"]:
        raise ModelRegistryError(f"{where}.source.model must name the model on the remote server")
    if "api_key" in source:
        raise ModelRegistryError(f"{where}.source.api_key: put the key in an environment variable and name it "
                                 "in source.api_key_env; models.json holds no secrets")


DTYPES = ("float32", "float16", "bfloat16")
QUANTIZATIONS = ("q8_0", "q4_0", "f16")  # llama.cpp: the GGUF re-quantized once
GPU_QUANTIZATIONS = ("int8", "nf4")  # transformers on CUDA: weights loaded in 8 or 4 bits (bitsandbytes)


def _quantization(entry: dict[str, Any], where: str) -> str | None:
    value = entry.get("quantization")
    if value is None:
        return None
    allowed = QUANTIZATIONS if entry["backend"] == "llama.cpp" else GPU_QUANTIZATIONS
    if entry["backend"] == "openai" or value not in allowed:
        raise ModelRegistryError(f"{where}.quantization must be one of {', '.join(QUANTIZATIONS)} for llama.cpp "
                                 f"entries, {', '.join(GPU_QUANTIZATIONS)} for transformers entries")
    return str(value)


def _dtype(value: Any, where: str) -> str | None:
    if value is not None and value not in DTYPES:
        raise ModelRegistryError(f"{where}.dtype must be one of {', '.join(DTYPES)}")
    return value


def _check_consistent(specs: list[ModelSpec], path: Path) -> None:
    ids = [spec.id for spec in specs]
    duplicates = sorted({model_id for model_id in ids if ids.count(model_id) > 1})
    if duplicates:
        raise ModelRegistryError(f"{path}: duplicate model ids {duplicates}")
    defaults = [spec.id for spec in specs if spec.default]
    if len(defaults) != 1:
        raise ModelRegistryError(f"{path}: exactly one model must have \"default\": true, found {defaults}")
