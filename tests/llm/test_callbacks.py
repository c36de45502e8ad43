"""Completion callbacks: upload validation, retries until the receiver takes it, failure and cancel reports."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from dramatiq import Worker

from pipeline import callbacks, documents
from pipeline.context import Context
from pipeline.jobs import DocumentStatus
from pipeline.settings import Settings
from tests import pages
from tests.fixtures_workers import chunks_of, run_in_context, wait_for_document
from tests.llm.chat_server import ChatServer
from tests.llm.conftest import CALLBACK_SECRET
from tests.llm.receiver import Receiver


async def _delivery(ctx: Context, doc_id: uuid.UUID) -> dict[str, Any]:
    row = await ctx.store.pool.fetchrow("SELECT * FROM callback_deliveries WHERE document_id = $1", doc_id)
    assert row is not None
    return dict(row)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"callback_url": "ftp://example.org/hook"}, "is not an http:// or https:// URL"),
        ({"callback_url": "https://"}, "is not an http:// or https:// URL"),
        ({"callback_url": "https://example.org/" + "a" * 2100}, "more than the limit of 2000"),
    ],
)
def test_bad_callback_url_is_refused(
    web_client: Callable[[Settings], httpx.Client], llm_settings: Settings, fields: dict[str, str], message: str
) -> None:
    api = web_client(llm_settings)
    data = pages.pdf_bytes([pages.text_page(pages.PARAGRAPH_A)])
    response = api.post("/api/documents", data=fields, files={"file": ("a.pdf", data, "application/pdf")})
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]["message"]
    assert api.get("/api/documents").json()["total"] == 0


def test_callback_url_needs_a_secret_on_the_server(
    web_client: Callable[[Settings], httpx.Client], llm_settings: Settings, receiver: Receiver
) -> None:
    api = web_client(llm_settings.model_copy(update={"callback_secret": None}))
    data = pages.pdf_bytes([pages.text_page(pages.PARAGRAPH_A)])
    response = api.post(
        "/api/documents", data={"callback_url": receiver.url}, files={"file": ("a.pdf", data, "application/pdf")}
    )
    assert response.status_code == 400
    assert "PAGEMILL_CALLBACK_SECRET" in response.json()["error"]["message"]


def test_receiver_failing_twice_gets_the_notification_on_retry(
    start_worker: Callable[..., Worker], llm_settings: Settings, receiver: Receiver
) -> None:
    from actors.notify import notify_callback

    receiver.answers = [500, 503]
    start_worker(llm_settings)

    async def finished_document(ctx: Context) -> uuid.UUID:
        data = pages.pdf_bytes([pages.text_page(pages.PARAGRAPH_A)])
        doc = await documents.ingest_upload(ctx, chunks_of(data), filename="a.pdf")
        await callbacks.set_callback_url(ctx, doc.id, receiver.url)
        await ctx.store.set_status(doc.id, DocumentStatus.COMPLETED)
        return doc.id

    doc_id = run_in_context(llm_settings, finished_document)
    notify_callback.send(document_id=str(doc_id))
    hits = receiver.wait_for(3)
    assert [h.answered for h in hits] == [500, 503, 200]
    assert all(h.signature_ok(CALLBACK_SECRET) for h in hits)
    assert len({h.body for h in hits}) == 1 and hits[0].json["status"] == "completed"
    record = run_in_context(llm_settings, lambda ctx: _delivery(ctx, doc_id))
    assert record["attempts"] == 3 and record["response_status"] == 200 and record["delivered_at"] is not None
    # Delivered: another send is a no-op.
    assert not run_in_context(llm_settings, lambda ctx: callbacks.wants_notification(ctx, doc_id))


def test_llm_failure_ends_partial_error_and_is_reported(
    start_worker: Callable[..., Worker], llm_settings: Settings, chat_server: ChatServer, receiver: Receiver
) -> None:
    from actors.ocr import ocr_document

    chat_server.modes = ["malformed"] * 20  # every chunk's answer and its corrective retry
    start_worker(llm_settings)

    async def scenario(ctx: Context) -> Any:
        data = pages.pdf_bytes([pages.text_page(pages.PARAGRAPH_A)])
        doc = await documents.ingest_upload(ctx, chunks_of(data), filename="a.pdf", options={"postprocess": ["summary"]})
        await callbacks.set_callback_url(ctx, doc.id, receiver.url)
        ocr_document.send(document_id=str(doc.id))
        return await wait_for_document(ctx, doc.id)

    done = run_in_context(llm_settings, scenario)
    assert done.status is DocumentStatus.PARTIAL_ERROR
    assert done.error.startswith("postprocessing failed: summary: model test-model gave no valid summary"), done.error
    assert done.result_key is not None  # the OCR result stands
    (hit,) = receiver.wait_for(1)
    assert hit.json["status"] == "partial_error" and hit.json["error"] == done.error


def test_cancel_is_reported(
    start_worker: Callable[..., Worker],
    web_client: Callable[[Settings], httpx.Client],
    llm_settings: Settings,
    receiver: Receiver,
) -> None:
    api = web_client(llm_settings)
    data = pages.pdf_bytes([pages.text_page(pages.PARAGRAPH_A)] * 3)
    response = api.post(
        "/api/documents", data={"callback_url": receiver.url}, files={"file": ("a.pdf", data, "application/pdf")}
    )
    assert response.status_code == 202, response.text
    doc_id = response.json()["id"]
    assert api.post(f"/api/documents/{doc_id}/cancel").status_code == 200
    start_worker(llm_settings)
    (hit,) = receiver.wait_for(1)
    assert hit.signature_ok(CALLBACK_SECRET)
    assert hit.json == {
        "id": doc_id,
        "status": "cancelled",
        "error": "cancelled by request",
        "links": hit.json["links"],
    }
