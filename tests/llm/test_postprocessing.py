"""Upload -> OCR -> summary + flashcards -> artifacts, through real workers and the stand-in server."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from dramatiq import Worker

from pipeline import artifacts, documents
from pipeline.jobs import DocumentStatus
from pipeline.settings import Settings
from tests import pages
from tests.fixtures_async import OpenContext
from tests.fixtures_workers import chunks_of, wait_for_document
from tests.llm.chat_server import ChatServer

pytestmark = pytest.mark.anyio


async def test_upload_ocr_summary_flashcards_artifacts(
    start_worker: Callable[..., Worker],
    llm_settings: Settings,
    chat_server: ChatServer,
    open_context: OpenContext,
) -> None:
    from actors.ocr import ocr_document

    start_worker(llm_settings)

    ctx = await open_context(llm_settings)
    data = pages.pdf_bytes([pages.text_page(pages.PARAGRAPH_A), pages.text_page(pages.PARAGRAPH_B)])
    doc = await documents.ingest_upload(
        ctx, chunks_of(data), filename="course.pdf", options={"postprocess": ["summary", "flashcards"]}
    )
    ocr_document.send(document_id=str(doc.id))
    await wait_for_document(ctx, doc.id, states={DocumentStatus.POSTPROCESSING, DocumentStatus.ERROR})
    done = await wait_for_document(ctx, doc.id)
    assert done.status is DocumentStatus.COMPLETED, done.error
    summary = await artifacts.get_artifact(ctx.store, doc.id, "summary")
    cards = await artifacts.get_artifact(ctx.store, doc.id, "flashcards")
    assert summary.data["summary"]["title"] and summary.data["pages"] == [1, 2]
    assert {c["source_page"] for c in cards.data["flashcards"]["cards"]} <= {1, 2}
    assert summary.tokens == summary.data["usage"]["total_tokens"] > 0
    reported = sum(u["total_tokens"] for u in chat_server.usage)
    assert await artifacts.document_tokens(ctx.store, doc.id) == reported
