"""Where a page's text comes from (``plan_page``), and ``redo``'s merge of real text with OCR lines."""

from __future__ import annotations

import dataclasses

from pipeline.ocr.base import Line, PageResult
from pipeline.ocr.layout import bounds, reading_order
from pipeline.textlayer.model import LayerKind, OcrMode, PageLayer, Plan, TextSource

# Share of an OCR line's box that must lie under a real-text line for ``redo`` to drop it.
REDO_OVERLAP = 0.5


def plan_page(layer: PageLayer | None, mode: OcrMode) -> Plan:
    """Decide where a page's text comes from; ``layer`` is None for images (always OCR)."""
    if mode is OcrMode.FORCE:
        return Plan(TextSource.OCR, "ocr_mode=force")
    if layer is None:
        return Plan(TextSource.OCR, "an image has no text layer")
    if layer.kind is LayerKind.TEXT_LAYER:
        return Plan(TextSource.TEXT_LAYER, layer.reason)
    keep = (
        mode is OcrMode.REDO
        and bool(layer.lines)
        and layer.kind in (LayerKind.OCR_LAYER, LayerKind.MOSTLY_IMAGE)
    )
    return Plan(
        TextSource.OCR, layer.reason + ("; real text kept (ocr_mode=redo)" if keep else ""), keep_text=keep
    )


def layer_result(layer: PageLayer) -> PageResult:
    """A text-layer page as a PageResult: its lines in reading order, confidence 1."""
    return PageResult(lines=reading_order(layer.lines), width=layer.width, height=layer.height)


def ocr_outside_real_text(ocr: PageResult, layer: PageLayer) -> PageResult:
    """``redo``: the OCR result without the lines that lie under the page's real text lines.

    Only when OCR kept the page as displayed (no quarter turn): boxes are then in the same frame;
    otherwise ``ocr`` as it is.
    """
    if ocr.rotation != 0 or not layer.lines:
        return ocr
    real = bounds(layer.lines)
    kept: list[Line] = []
    for line, (x0, y0, x1, y1) in zip(ocr.lines, bounds(ocr.lines), strict=True):
        area = max((x1 - x0) * (y1 - y0), 1e-6)
        ix = (real[:, 2].clip(max=x1) - real[:, 0].clip(min=x0)).clip(min=0)
        iy = (real[:, 3].clip(max=y1) - real[:, 1].clip(min=y0)).clip(min=0)
        if float((ix * iy).sum()) / area < REDO_OVERLAP:
            kept.append(line)
    return dataclasses.replace(ocr, lines=tuple(kept))


def merge_real_text(ocr: PageResult, layer: PageLayer) -> PageResult:
    """``redo``: the page's real text lines, plus the OCR lines that do not lie under them."""
    if ocr.rotation != 0 or not layer.lines:
        return ocr
    outside = ocr_outside_real_text(ocr, layer)
    return dataclasses.replace(outside, lines=reading_order([*layer.lines, *outside.lines]))
