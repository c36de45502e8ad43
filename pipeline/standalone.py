"""One page of a stored file OCRed without a document record: Celery's stand-alone ``tasks.ocr_page`` call.

The producer gets the page's text and lines as the call's result; nothing is kept.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

from pipeline import pdf
from pipeline.aggregate import page_to_json
from pipeline.context import Context
from pipeline.ocr import get_engine, recognize_page


async def ocr_standalone_page(
    ctx: Context,
    storage_key: str,
    page_no: int,
    *,
    lang_hints: Sequence[str] = (),
    min_confidence: float | None = None,
    dpi: int | None = None,
) -> dict[str, Any]:
    """OCR one page of a stored file without a document record (Celery's stand-alone page call)."""
    settings = ctx.settings
    tmp = settings.cache_dir / f"page-{uuid.uuid4()}.tmp"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    try:
        await ctx.storage.get_to_file(storage_key, tmp)
        engine = await asyncio.to_thread(get_engine, settings, settings.merge_languages(lang_hints))
        min_conf = settings.min_confidence if min_confidence is None else min_confidence

        def run() -> Any:
            pdf.inspect_document(tmp, max_pages=settings.max_pages, max_page_pixels=settings.max_page_pixels,
                                 dpi=dpi or settings.pdf_dpi)
            image = pdf.render_page(tmp, page_no, dpi=dpi or settings.pdf_dpi, max_page_pixels=settings.max_page_pixels)
            return recognize_page(engine, image, min_confidence=min_conf)

        result = await asyncio.to_thread(run)
    finally:
        tmp.unlink(missing_ok=True)
    return {"storage_key": storage_key, "page_no": page_no, "engine": engine.name, "text": result.text,
            **page_to_json(result)}
