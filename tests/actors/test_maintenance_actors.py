"""The reaper recovers a document whose page messages were deleted from Redis."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable

import dramatiq
import pytest
from dramatiq import Worker
from dramatiq.brokers.redis import RedisBroker

from pipeline import documents
from pipeline.context import Context
from pipeline.jobs import DocumentStatus
from pipeline.settings import Settings
from tests import pages
from tests.fixtures_async import OpenContext
from tests.fixtures_workers import chunks_of, wait_for_document

pytestmark = pytest.mark.anyio


async def test_reaper_resends_page_messages_lost_from_redis(
    broker: RedisBroker,
    start_worker: Callable[..., Worker],
    pipeline_settings: Settings,
    open_context: OpenContext,
) -> None:
    from actors.maintenance import reap_lost_work
    from actors.ocr import ocr_page

    settings = pipeline_settings.model_copy(update={"reaper_age_s": 60})

    ctx = await open_context(settings)
    data = pages.pdf_bytes([pages.text_page(pages.PARAGRAPH_A), pages.text_page(pages.PARAGRAPH_B)])
    doc = await documents.ingest_upload(ctx, chunks_of(data), filename="lost.pdf")
    # What tasks.ocr_document does, then the page messages vanish from Redis.
    to_send = (await documents.prepare_document(ctx, doc.id)).to_ocr
    dramatiq.group(ocr_page.message(document_id=str(doc.id), page_no=n) for n in to_send).run()
    assert broker.client.llen(f"{settings.redis_namespace}:{settings.ocr_queue}") == 2
    broker.flush(settings.ocr_queue)
    # Nothing happens until the reaper runs: the document is silent.
    start_worker(settings)
    await asyncio.sleep(1.0)
    assert (await ctx.store.get_document(doc.id)).status is DocumentStatus.PROCESSING_CHUNKS
    await ctx.store.pool.execute(
        "UPDATE documents SET updated_at = now() - interval '5 minutes' WHERE id = $1", doc.id
    )
    reap_lost_work.send()
    done = await wait_for_document(ctx, doc.id)
    assert done.status is DocumentStatus.COMPLETED
    text = (await ctx.storage.get_bytes(documents.result_key(doc.id, "txt"))).decode()
    assert pages.cer(text.split("\f")[1], "\n".join(pages.PARAGRAPH_B)) < 0.05
    assert [p.resends for p in await ctx.store.list_pages(doc.id)] == [1, 1]


async def test_scheduled_purge_and_daily_summary_run_on_a_worker(
    broker: RedisBroker, start_worker: Callable[..., Worker], pipeline_settings: Settings, ctx: Context
) -> None:
    from actors.maintenance import daily_stats, prune_source_cache, purge_expired_documents

    # A source file in this machine's cache, unused for two days: the clock's prune drops it.
    stale = pipeline_settings.cache_dir / ("ab" * 32 + ".pdf")
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"%PDF-1.4 stale")
    two_days_ago = time.time() - 48 * 3600
    os.utime(stale, (two_days_ago, two_days_ago))

    pdf = pages.pdf_bytes([pages.blank_page(255)])
    old = await documents.ingest_upload(ctx, chunks_of(pdf), filename="old.pdf")
    recent = await documents.ingest_upload(ctx, chunks_of(pdf), filename="recent.pdf")
    await ctx.store.pool.execute(
        "UPDATE documents SET status = 'completed', finished_at = now() - make_interval(days => $2) WHERE id = $1",
        old.id, pipeline_settings.retention_days + 1,
    )  # fmt: skip
    await ctx.store.pool.execute("UPDATE documents SET status = 'completed', finished_at = now() WHERE id = $1",
                                 recent.id)  # fmt: skip
    start_worker(pipeline_settings)
    purge_expired_documents.send()
    daily_stats.send()
    prune_source_cache.send()
    deadline = asyncio.get_running_loop().time() + 60
    while (
        await ctx.store.pool.fetchval("SELECT count(*) FROM daily_stats") < 4
        or await ctx.storage.exists(old.source_key)
        or stale.exists()
    ):
        assert asyncio.get_running_loop().time() < deadline, "the maintenance actors did not run"
        await asyncio.sleep(0.1)
    assert [d.id for d in await ctx.store.list_documents()] == [recent.id]
    assert await ctx.storage.exists(recent.source_key)
    # Three days back and today (UTC): the recent document finished in one of them; the
    # purged one is gone from the numbers.
    rows = await ctx.store.pool.fetch("SELECT day, summary FROM daily_stats ORDER BY day")
    assert [(r["day"] - rows[0]["day"]).days for r in rows] == [0, 1, 2, 3]
    assert sorted((r["summary"]["documents_finished"] for r in rows), key=len) == [{}, {}, {}, {"completed": 1}]
