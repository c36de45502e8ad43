"""The OCR engine contract: one Protocol, frozen result types."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

# An RGB page image, shape (height, width, 3), dtype uint8.
Image = npt.NDArray[np.uint8]
# Four corner points (x, y) in page pixels: top-left, top-right, bottom-right, bottom-left.
Box = tuple[tuple[float, float], tuple[float, float], tuple[float, float], tuple[float, float]]


@dataclass(frozen=True, slots=True)
class Word:
    """One word of a line: its text, confidence and axis-aligned box (x0, y0, x1, y1) in page pixels."""

    text: str
    confidence: float
    box: tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class Line:
    """One recognised text line; ``words`` when the engine knows where each word is (else empty)."""

    text: str
    confidence: float
    box: Box
    words: tuple[Word, ...] = ()


@dataclass(frozen=True, slots=True)
class PageResult:
    """What an engine (plus the page pipeline) found on one page, lines in reading order."""

    lines: tuple[Line, ...]
    width: int = 0
    height: int = 0
    rotation: int = 0  # degrees clockwise applied to make the page upright (0/90/180/270)
    skew: float = 0.0  # degrees of small-angle deskew applied
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The page text, one line per recognised line."""
        return "\n".join(line.text for line in self.lines)

    @property
    def mean_confidence(self) -> float:
        """Mean line confidence, 0.0 for an empty page."""
        if not self.lines:
            return 0.0
        return sum(line.confidence for line in self.lines) / len(self.lines)


@runtime_checkable
class OcrEngine(Protocol):
    """A text recogniser: loaded once per process, called once per page."""

    name: str
    languages: tuple[str, ...]

    def recognize(self, image: Image) -> PageResult:
        """Return the lines found on ``image`` (any order; the pipeline orders them)."""
        ...
