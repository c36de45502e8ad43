"""OCR through Celery: the result is the aggregated document, written when aggregation finishes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from celery import Celery

from pipeline.context import Context
from pipeline.documents import document_id_for_message
from pipeline.settings import Settings
from tests import pages
from tests.celery.conftest import RESULT_TIMEOUT_S

# The highest character error rate accepted on our clean rendered pages.
MAX_CER = 0.05
# OCR on two shared cores takes a few seconds per page, seconds.
OCR_TIMEOUT_S = 180


def _store(settings: Settings, key: str, data: bytes) -> None:
    """Put ``data`` into storage from a sync test (the serverless handler runs its own event loop)."""

    async def put() -> None:
        ctx = await Context.open(settings)
        try:
            await ctx.storage.put_bytes(key, data)
        finally:
            await ctx.aclose()

    asyncio.run(put())


def _handler() -> Any:
    from serverless_handler import handler

    return handler


@pytest.mark.anyio
async def test_ocr_document_result_is_the_aggregated_document(
    celery_app: Celery, start_worker: Callable[..., Any], start_bridge: Any, ctx: Context
) -> None:
    lines = [pages.PARAGRAPH_A[:3], pages.PARAGRAPH_B[:3]]
    await ctx.storage.put_bytes("uploads/two.pdf", pages.pdf_bytes([pages.text_page(part) for part in lines]))
    start_worker()
    start_bridge()
    result = celery_app.send_task(
        "tasks.ocr_document", kwargs={"storage_key": "uploads/two.pdf", "lang_hints": ["en"]}
    )
    value = result.get(timeout=OCR_TIMEOUT_S)
    assert value["status"] == "completed" and value["page_count"] == 2
    reference = "\n".join(lines[0] + lines[1])
    assert pages.cer(value["text"], reference) <= MAX_CER, value["text"]
    assert result.status == "SUCCESS"


@pytest.mark.anyio
async def test_ocr_document_result_is_not_written_at_fan_out(
    celery_app: Celery, start_worker: Callable[..., Any], start_bridge: Any, ctx: Context
) -> None:
    await ctx.storage.put_bytes(
        "uploads/one.pdf", pages.pdf_bytes([pages.text_page(pages.PARAGRAPH_A[:1])] * 3)
    )
    start_bridge()
    start_worker(threads=1)
    result = celery_app.send_task("tasks.ocr_document", kwargs={"storage_key": "uploads/one.pdf"})
    seen = set()
    deadline = time.monotonic() + OCR_TIMEOUT_S
    while not result.ready() and time.monotonic() < deadline:
        seen.add(result.status)
        await asyncio.sleep(0.05)
    assert seen <= {"PENDING"} and result.status == "SUCCESS"
    assert result.get(timeout=RESULT_TIMEOUT_S)["page_count"] == 3


def test_serverless_ocr_runs_the_document_inline(pipeline_settings: Settings, broker: Any) -> None:
    from actors import runtime

    _store(pipeline_settings, "uploads/inline.pdf", pages.pdf_bytes([pages.text_page(pages.PARAGRAPH_B[:3])]))
    runtime.use_settings(pipeline_settings)
    try:
        answer = _handler()(
            {"input": {"task": "tasks.ocr_document", "payload": {"storage_key": "uploads/inline.pdf"}}}
        )
    finally:
        runtime.use_settings(None)
    assert answer["status"] == "ok", answer
    assert answer["result"]["status"] == "completed"
    assert pages.cer(answer["result"]["text"], "\n".join(pages.PARAGRAPH_B[:3])) <= MAX_CER


@pytest.mark.anyio
async def test_cancelled_document_revokes_its_celery_result(
    celery_app: Celery,
    start_worker: Callable[..., Any],
    start_bridge: Any,
    serve: Callable[..., str],
    ctx: Context,
) -> None:
    """A cancel over HTTP answers the waiting producer at once (REVOKED) instead of its timeout."""

    import httpx
    from celery.exceptions import TaskRevokedError

    await ctx.storage.put_bytes("uploads/long.pdf", pages.pdf_bytes([pages.text_page(pages.PARAGRAPH_A)] * 6))
    base = serve()
    start_bridge()
    start_worker(threads=1)
    result = celery_app.send_task("tasks.ocr_document", kwargs={"storage_key": "uploads/long.pdf"})
    doc_id = document_id_for_message(result.id)
    deadline = time.monotonic() + OCR_TIMEOUT_S
    with httpx.Client(base_url=base, timeout=30) as api:
        while api.get(f"/api/documents/{doc_id}/status").json().get("status") != "processing_chunks":
            assert time.monotonic() < deadline, "the document was never split"
            await asyncio.sleep(0.05)
        assert api.post(f"/api/documents/{doc_id}/cancel").status_code == 200
    try:
        result.get(timeout=RESULT_TIMEOUT_S)
    except TaskRevokedError as exc:
        assert "cancelled by request" in str(exc)
    else:
        raise AssertionError("a cancelled document's Celery result must be REVOKED")
    assert result.status == "REVOKED"


@pytest.mark.anyio
async def test_celery_kwargs_ocr_mode_and_outputs_reach_the_document(
    celery_app: Celery, start_worker: Callable[..., Any], start_bridge: Any, ctx: Context
) -> None:
    import json
    import uuid

    from pipeline import documents
    from tests import born_digital

    digital = born_digital.sample_pages()[:1]
    await ctx.storage.put_bytes("uploads/digital.pdf", born_digital.pdf_bytes(digital))
    start_worker()
    start_bridge()
    result = celery_app.send_task(
        "tasks.ocr_document", kwargs={"storage_key": "uploads/digital.pdf", "ocr_mode": "force", "outputs": ["md"]}
    )
    value = result.get(timeout=OCR_TIMEOUT_S)
    assert value["status"] == "completed", value
    doc_id = uuid.UUID(value["document_id"])

    data = json.loads(await ctx.storage.get_bytes(documents.result_key(doc_id, "json")))
    markdown = (await ctx.storage.get_bytes(documents.result_key(doc_id, "md"))).decode()
    # force: the page was OCRed although its text layer is real.
    assert [p["source"] for p in data["pages"]] == ["ocr"]
    assert "Dear customer" in markdown
