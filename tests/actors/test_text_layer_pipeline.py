"""PDFs with a text layer through real workers: text pages are read, not OCRed; scans still are."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable

import pytest
from dramatiq import Worker
from dramatiq.brokers.redis import RedisBroker
from pypdf import PdfReader, PdfWriter

from pipeline import documents
from pipeline.context import Context
from pipeline.jobs import DocumentStatus
from tests import born_digital, pages
from tests.fixtures_workers import chunks_of, wait_for_document

pytestmark = pytest.mark.anyio


def _mixed_pdf() -> tuple[bytes, list[str]]:
    """Born-digital page, scanned page (an image, no text), born-digital page; and their texts."""
    digital = born_digital.sample_pages()[:2]
    writer = PdfWriter()
    text_pdf = PdfReader(io.BytesIO(born_digital.pdf_bytes(digital)))
    scan_pdf = PdfReader(io.BytesIO(pages.pdf_bytes([pages.text_page(pages.PARAGRAPH_A)])))
    for page in (text_pdf.pages[0], scan_pdf.pages[0], text_pdf.pages[1]):
        writer.add_page(page)
    out = io.BytesIO()
    writer.write(out)
    expected = ["\n".join(digital[0].lines), "\n".join(pages.PARAGRAPH_A), "\n".join(digital[1].lines)]
    return out.getvalue(), expected


async def _run(ctx: Context, data: bytes, options: dict[str, object] | None = None) -> uuid.UUID:
    from actors.ocr import ocr_document

    doc = await documents.ingest_upload(ctx, chunks_of(data), filename="doc.pdf", options=options)
    ocr_document.send(document_id=str(doc.id))
    return doc.id


async def _result(ctx: Context, doc_id: uuid.UUID) -> dict[str, object]:
    data: dict[str, object] = json.loads(await ctx.storage.get_bytes(documents.result_key(doc_id, "json")))
    return data


async def test_mixed_document_reads_text_pages_and_ocrs_the_scan(
    broker: RedisBroker, start_worker: Callable[..., Worker], ctx: Context
) -> None:
    data, expected = _mixed_pdf()
    start_worker()

    doc_id = await _run(ctx, data)
    doc = await wait_for_document(ctx, doc_id)
    assert doc.status is DocumentStatus.COMPLETED, doc.error
    result = await _result(ctx, doc_id)
    got = result["pages"]
    assert isinstance(got, list)
    assert [p["source"] for p in got] == ["text_layer", "ocr", "text_layer"]
    assert result["pages_by_source"] == {"text_layer": 2, "ocr": 1}
    assert "scanned image" in got[1]["source_reason"]
    # Text pages come out exactly (ligatures spelt out), with boxes and full confidence.
    assert got[0]["text"] == expected[0]
    assert got[2]["text"] == expected[2].replace("ﬁ", "fi")
    assert all(line["confidence"] == 1.0 and line["box"] for line in got[0]["lines"])
    assert got[0]["mean_confidence"] == 1.0 and got[1]["mean_confidence"] < 1.0
    assert pages.cer(got[1]["text"], expected[1]) <= 0.05
    assert doc.engine not in (None, documents.TEXT_LAYER_ENGINE)  # the scan needed an engine
    # Every text page has a thumbnail, rendered from the PDF without OCR.
    for page_no in (1, 3):
        thumb = await ctx.storage.get_bytes(documents.thumbnail_key(doc_id, page_no))
        assert thumb.startswith(b"\x89PNG")


async def test_born_digital_document_needs_no_engine_and_force_ocrs_it(
    broker: RedisBroker, start_worker: Callable[..., Worker], ctx: Context
) -> None:
    one_page = born_digital.sample_pages()[:1]
    data = born_digital.pdf_bytes(one_page)
    start_worker()

    read = await wait_for_document(ctx, await _run(ctx, data))
    assert read.status is DocumentStatus.COMPLETED, read.error
    assert read.engine == documents.TEXT_LAYER_ENGINE
    (page,) = (await _result(ctx, read.id))["pages"]  # type: ignore[misc]
    assert page["source"] == "text_layer" and page["text"] == "\n".join(one_page[0].lines)

    forced = await wait_for_document(ctx, await _run(ctx, data, {"ocr_mode": "force"}))
    assert forced.status is DocumentStatus.COMPLETED, forced.error
    assert forced.engine != documents.TEXT_LAYER_ENGINE
    (page,) = (await _result(ctx, forced.id))["pages"]  # type: ignore[misc]
    assert page["source"] == "ocr" and page["source_reason"] == "ocr_mode=force"
    assert pages.cer(page["text"], "\n".join(one_page[0].lines)) <= 0.05


async def test_unknown_ocr_mode_fails_the_document_with_a_reason(
    broker: RedisBroker, start_worker: Callable[..., Worker], ctx: Context
) -> None:
    start_worker()

    data = born_digital.pdf_bytes(born_digital.sample_pages()[:1])
    doc = await wait_for_document(ctx, await _run(ctx, data, {"ocr_mode": "sometimes"}))
    assert doc.status is DocumentStatus.ERROR
    assert doc.error is not None and "ocr_mode" in doc.error and "auto" in doc.error
