"""Page results -> one document result (text and JSON).

Lines arrive already in reading order (``pipeline.ocr.recognize_page`` orders them by layout);
here pages are put in page order, failed pages are listed with their reasons, and the final
document status is decided: all pages done -> completed, none -> error, else partial_error.
"""

from __future__ import annotations

import collections
import statistics
from dataclasses import dataclass
from typing import Any

from pipeline.jobs import Document, DocumentStatus, Page, PageStatus
from pipeline.ocr.base import Line, PageResult

# Separates pages in the document text, as pdftotext and the OCR ground truth files do.
PAGE_SEPARATOR = "\f"
# Schema version of result.json; bump when a field changes meaning.
RESULT_VERSION = 1


@dataclass(frozen=True, slots=True)
class DocumentResult:
    """The aggregated document."""

    status: DocumentStatus
    text: str
    data: dict[str, Any]
    error: str | None


def page_to_json(result: PageResult) -> dict[str, Any]:
    """Serialise one page's OCR result for the ``pages.result`` column."""
    return {
        "width": result.width,
        "height": result.height,
        "rotation": result.rotation,
        "skew": round(result.skew, 3),
        "mean_confidence": round(result.mean_confidence, 4),
        "timings": {k: round(v, 4) for k, v in result.timings.items()},
        "lines": [_line_json(line) for line in result.lines],
    }


def _line_json(line: Line) -> dict[str, Any]:
    out: dict[str, Any] = {
        "text": line.text,
        "confidence": round(line.confidence, 4),
        "box": [[round(x, 1), round(y, 1)] for x, y in line.box],
    }
    if line.words:
        out["words"] = [
            {"text": w.text, "confidence": round(w.confidence, 4), "box": [round(v, 1) for v in w.box]}
            for w in line.words
        ]
    return out


def _final_status(pages: list[Page]) -> DocumentStatus:
    done = sum(1 for p in pages if p.status is PageStatus.DONE)
    if pages and done == len(pages):
        return DocumentStatus.COMPLETED
    if done == 0:
        return DocumentStatus.ERROR
    return DocumentStatus.PARTIAL_ERROR


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def aggregate_document(document: Document, pages: list[Page]) -> DocumentResult:
    """Build the document text and JSON from its pages."""
    pages = sorted(pages, key=lambda p: p.page_no)
    status = _final_status(pages)
    failed = [
        {"page_no": p.page_no, "status": p.status.value, "reason": p.error or "page was not processed"}
        for p in pages
        if p.status is not PageStatus.DONE
    ]
    page_json = []
    for page in pages:
        body = page.result or {}
        page_json.append(
            {
                "page_no": page.page_no,
                "status": page.status.value,
                "text": page.text or "",
                "mean_confidence": body.get("mean_confidence", page.confidence or 0.0),
                "rotation": body.get("rotation", 0),
                "skew": body.get("skew", 0.0),
                "width": body.get("width"),
                "height": body.get("height"),
                "lines": body.get("lines", []),
                # text_layer (read from the PDF) or ocr, and why (pipeline.textlayer.Plan)
                "source": body.get("source"),
                "source_reason": body.get("source_reason"),
                "error": page.error,
                "duration_ms": page.duration_ms,
                "attempts": page.attempts,
            }
        )
    text = PAGE_SEPARATOR.join(p.text or "" for p in pages)
    durations = [float(p.duration_ms) for p in pages if p.duration_ms is not None]
    confidences = [p.confidence for p in pages if p.status is PageStatus.DONE and p.confidence is not None]
    data: dict[str, Any] = {
        "version": RESULT_VERSION,
        "document_id": str(document.id),
        "filename": document.filename,
        "kind": document.kind,
        "status": status.value,
        "engine": document.engine,
        "page_count": len(pages),
        "pages_done": len(pages) - len(failed),
        "pages_by_source": dict(collections.Counter(p["source"] for p in page_json if p["source"])),
        "failed_pages": failed,
        "mean_confidence": round(statistics.fmean(confidences), 4) if confidences else 0.0,
        "characters": len(text) - text.count(PAGE_SEPARATOR),
        "timings": {
            "page_ms_total": sum(durations),
            "page_ms_p50": _percentile(durations, 50),
            "page_ms_p95": _percentile(durations, 95),
            "queued_at": document.created_at.isoformat(),
        },
        "pages": page_json,
    }
    error = None
    if failed:
        shown = "; ".join(f"page {f['page_no']}: {f['reason']}" for f in failed[:5])
        more = f" (and {len(failed) - 5} more)" if len(failed) > 5 else ""
        error = f"{len(failed)} of {len(pages)} pages failed: {shown}{more}"
    return DocumentResult(status=status, text=text, data=data, error=error)
