"""The searchable PDF across workers: each page's text layer is made where the page was read.

The worker that OCRs a page also builds its layer (``pipeline.outputs.pdflayer``, a few ms) and
stores it at ``documents/<id>/layers/<page_no>.pdf`` before the page is marked done, so a reader
that sees the page done finds its layer. Aggregation fetches the layers and grafts them onto the
source (``pipeline.outputs.searchable``), then stores ``result.pdf``. Pages read from their own
text layer need none; a page whose layer could not be made or stored is listed in ``result.json``
(``outputs.pdf.pages_without_ocr_layer``) and keeps its page without OCR text.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from pathlib import Path
from typing import Any

import structlog

from pipeline.context import Context
from pipeline.errors import NotFoundError
from pipeline.jobs import Document, Page, PageStatus
from pipeline.outputs.pdflayer import layer_pdf
from pipeline.outputs.searchable import SearchableReport, make_searchable_pdf
from pipeline.textlayer import LayerKind, TextSource

log = structlog.get_logger(__name__)

# Layers fetched from storage at once during aggregation.
LAYER_READS = 16


def layer_key(document_id: uuid.UUID, page_no: int) -> str:
    """Where page ``page_no``'s text layer lives in storage."""
    return f"documents/{document_id}/layers/{page_no}.pdf"


def build_layer(
    page_json: dict[str, Any], image_size: tuple[int, int], *, document_id: uuid.UUID, page_no: int
) -> bytes | None:
    """The page's layer PDF, or None (logged) when it cannot be made: the page itself is still done."""
    try:
        return layer_pdf(page_json, image_size=image_size)
    except Exception as exc:  # noqa: BLE001 - a layer is an extra: its failure must not fail the page
        log.warning("page.layer_failed", document_id=str(document_id), page_no=page_no, reason=str(exc))
        return None


def _wants_layer(page: Page) -> bool:
    body = page.result or {}
    return page.status is PageStatus.DONE and body.get("source", TextSource.OCR.value) == TextSource.OCR.value


async def store_searchable_pdf(
    ctx: Context, doc: Document, pages: list[Page], source: Path, key: str
) -> SearchableReport:
    """Graft the stored layers of ``pages`` onto ``source`` and store the result at ``key``."""
    limit = asyncio.Semaphore(LAYER_READS)

    async def fetch(page_no: int) -> tuple[int, bytes | None]:
        async with limit:
            try:
                return page_no, await ctx.storage.get_bytes(layer_key(doc.id, page_no))
            except NotFoundError:
                return page_no, None

    wanted = [p for p in pages if _wants_layer(p)]
    layers = dict(await asyncio.gather(*(fetch(p.page_no) for p in wanted)))
    missing = {
        p.page_no: f"the page {p.status.value}: {p.error or 'not processed'}"
        for p in pages
        if p.status is not PageStatus.DONE
    }
    strip_old = {p.page_no for p in wanted if (p.result or {}).get("layer") == LayerKind.OCR_LAYER.value}
    with tempfile.TemporaryDirectory(prefix="pagemill-pdf-") as tmp:
        target = Path(tmp) / "result.pdf"
        report = await asyncio.to_thread(
            make_searchable_pdf,
            source,
            is_pdf=doc.kind == "pdf",
            layers=layers,
            missing=missing,
            strip_old=strip_old,
            target=target,
        )
        await ctx.storage.put_file(key, target)
    log.info(
        "document.searchable_pdf",
        document_id=str(doc.id),
        pages_with_layer=len(report.layered),
        pages_without_layer=len(report.without_layer),
        old_layers_removed=len(report.stripped),
    )
    return report
