"""Outputs asked for by option (the Celery kwarg ``outputs`` lands there) through real workers."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from dramatiq import Worker
from dramatiq.brokers.redis import RedisBroker

from pipeline import documents
from pipeline.context import Context
from pipeline.jobs import DocumentStatus
from tests import born_digital
from tests.fixtures_workers import chunks_of, wait_for_document

pytestmark = pytest.mark.anyio


async def test_outputs_option_writes_them_and_a_bad_one_fails_the_document(
    broker: RedisBroker, start_worker: Callable[..., Worker], ctx: Context
) -> None:
    from actors.ocr import ocr_document

    data = born_digital.pdf_bytes(born_digital.sample_pages()[:1])
    start_worker()

    good = await documents.ingest_upload(ctx, chunks_of(data), filename="a.pdf", options={"outputs": "md"})
    bad = await documents.ingest_upload(ctx, chunks_of(data), filename="b.pdf", options={"outputs": ["pdfa"]})
    for doc in (good, bad):
        ocr_document.send(document_id=str(doc.id))
    done = await wait_for_document(ctx, good.id)
    assert done.status is DocumentStatus.COMPLETED, done.error
    markdown = (await ctx.storage.get_bytes(documents.result_key(good.id, "md"))).decode()
    assert markdown.startswith("<!-- page 1 -->\n\nDear customer, thank you for your order")
    assert not await ctx.storage.exists(documents.result_key(good.id, "hocr"))
    failed = await wait_for_document(ctx, bad.id)
    assert failed.status is DocumentStatus.ERROR
    assert failed.error is not None and "pdfa" in failed.error and "hocr, alto, md" in failed.error
