"""One page through OCR: turn it upright, recognise, drop unsure lines, put lines in reading order."""

from __future__ import annotations

import time

import numpy as np

from pipeline.ocr import orientation
from pipeline.ocr.base import Image, OcrEngine, PageResult
from pipeline.ocr.layout import reading_order


def recognize_page(engine: OcrEngine, image: Image, *, min_confidence: float) -> PageResult:
    """OCR ``image`` with ``engine``: upright + deskew, recognise, filter, order. Thread-safe.

    Boxes in the result are in the coordinates of the upright (rotated, deskewed) page, whose
    size is ``width``/``height``; ``rotation`` and ``skew`` say how it was obtained.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 image (h, w, 3), got {image.dtype} {image.shape}")
    timings: dict[str, float] = {}
    started = time.perf_counter()
    found = orientation.detect(engine, image)
    upright = orientation.upright(image, found)
    timings["orientation"] = time.perf_counter() - started

    result = engine.recognize(upright)
    timings.update(result.timings)

    started = time.perf_counter()
    kept = [line for line in result.lines if line.confidence >= min_confidence]
    lines = reading_order(kept)
    timings["layout"] = time.perf_counter() - started

    height, width = upright.shape[:2]
    return PageResult(
        lines=lines,
        width=width,
        height=height,
        rotation=found.rotation,
        skew=found.skew if abs(found.skew) >= orientation.MIN_DESKEW else 0.0,
        timings=timings,
    )
