"""What the parsing sandbox imports once and calls per file: the loaders, with offline spaCy."""
from __future__ import annotations

from pathlib import Path

from rag.loaders import LOADERS
from rag.spacy_model import use_packaged_spacy_model
from rag.types import ParsedDocument

# Warm the heavy imports in the forkserver so every forked child starts ready.
use_packaged_spacy_model()
import unstructured.partition.docx  # noqa: E402,F401
import unstructured.partition.html  # noqa: E402,F401
import unstructured.partition.md  # noqa: E402,F401


def parse(path: Path, doc_type: str) -> ParsedDocument:
    return LOADERS[doc_type](path)
