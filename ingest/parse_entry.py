"""What the parsing sandbox imports once and calls per file: the loaders, with offline spaCy."""
from __future__ import annotations

from pathlib import Path

from ingest.loaders import LOADERS, Progress, no_progress
from ingest.spacy_model import use_packaged_spacy_model
from ingest.types import ParsedDocument

use_packaged_spacy_model()
import openpyxl  # noqa: E402,F401
import pdfplumber  # noqa: E402,F401
import pptx  # noqa: E402,F401
import unstructured.partition.docx  # noqa: E402,F401
from unstructured.partition.md import partition_md  # noqa: E402

# The OCR engine is not imported here: it is made in the parsing child, on first use.
# Warm everything lazy (spaCy model, langdetect profiles, markdown) once, in the forkserver: every
# forked child starts ready instead of paying ~0.5 s per document.
partition_md(text="# Warm up\n\nThis sentence warms the parsers up. It is parsed once at start.\n")


def parse(path: Path, doc_type: str, progress: Progress = no_progress) -> ParsedDocument:
    return LOADERS[doc_type](path, progress)
