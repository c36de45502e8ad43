"""What a PDF page's text layer is, where its text will come from, and the OCR modes (see the package docstring)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pipeline.ocr.base import Line


class LayerKind(StrEnum):
    """What a PDF page's text layer is (see the module docstring)."""

    TEXT_LAYER = "text_layer"
    GARBAGE_LAYER = "garbage_layer"
    OCR_LAYER = "ocr_layer"
    MOSTLY_IMAGE = "mostly_image"
    IMAGE_ONLY = "image_only"
    NO_TEXT = "no_text"


class OcrMode(StrEnum):
    """Where page text comes from: ``auto`` reads real text layers, ``force`` OCRs everything,
    ``redo`` is ``auto`` that also keeps real text on pages it OCRs."""

    AUTO = "auto"
    FORCE = "force"
    REDO = "redo"


class TextSource(StrEnum):
    """Where a page's text came from, recorded per page in ``result.json``."""

    TEXT_LAYER = "text_layer"
    OCR = "ocr"


@dataclass(frozen=True, slots=True)
class PageLayer:
    """What one PDF page's text layer holds: its kind, why, and its visible text as lines."""

    page_no: int
    kind: LayerKind
    reason: str
    width: int  # px at the dpi asked for, as displayed (rotation applied)
    height: int
    lines: tuple[Line, ...] = ()  # visible text, not yet in reading order
    stats: dict[str, float] = field(default_factory=dict)
    thumbnail: bytes | None = None  # PNG preview, when asked for


@dataclass(frozen=True, slots=True)
class Plan:
    """Where one page's text will come from, and why (shown in progress, JSON and dashboard)."""

    source: TextSource
    reason: str
    keep_text: bool = False  # ``redo``: merge the page's real text lines into its OCR result

    def as_json(self, kind: LayerKind | None) -> dict[str, Any]:
        """The ``source`` fields of a page in ``result.json``."""
        out: dict[str, Any] = {"source": self.source.value, "source_reason": self.reason}
        if kind is not None:
            out["layer"] = kind.value
        return out
