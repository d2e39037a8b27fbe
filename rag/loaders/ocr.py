"""Text from images of pages, offline: RapidOCR (PP-OCRv4 detection and recognition as ONNX models
shipped inside the rapidocr-onnxruntime package) on onnxruntime.

The engine is made in the parsing child, never in the forkserver: onnxruntime's thread pool does not
survive a fork."""
from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

import numpy as np

# Pages are rendered at this many pixels per inch: 12 pt text comes out ~33 px high. At 150 dpi the
# recognizer drops more spaces between English words (bench/ingest.py measures pages/s).
OCR_DPI = 200
MIN_SCORE = 0.5


@lru_cache(maxsize=1)
def _engine() -> Any:
    from rapidocr_onnxruntime import RapidOCR

    threads = int(os.environ.get("OCR_THREADS", "0")) or (os.cpu_count() or 1)
    return RapidOCR(intra_op_num_threads=threads, inter_op_num_threads=1, print_verbose=False)


def read_image(image: np.ndarray) -> str:
    """The text of an RGB image, line by line in reading order (top to bottom, left to right)."""
    found, _elapsed = _engine()(image, use_cls=False)
    boxes = [(np.asarray(box, dtype=float), text) for box, text, score in found or [] if score >= MIN_SCORE]
    return "\n".join(" ".join(text for _left, text in line) for line in _lines(boxes))


def _lines(boxes: list[tuple[np.ndarray, str]]) -> list[list[tuple[float, str]]]:
    """Group boxes whose vertical centres lie within half a box height of a line's first box."""
    lines: list[tuple[float, float, list[tuple[float, str]]]] = []
    for box, text in sorted(boxes, key=lambda item: item[0][:, 1].mean()):
        centre, height, left = box[:, 1].mean(), np.ptp(box[:, 1]), box[:, 0].min()
        if lines and abs(centre - lines[-1][0]) <= max(lines[-1][1], height) / 2:
            lines[-1][2].append((left, text))
        else:
            lines.append((centre, height, [(left, text)]))
    return [sorted(words) for _centre, _height, words in lines]
