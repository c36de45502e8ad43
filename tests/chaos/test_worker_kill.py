"""``kill -9`` of OCR workers in the middle of documents, three times: nothing lost, nothing twice.

A Dramatiq worker acks a message only after the actor returns, so the messages a killed worker
held stay in its Redis ack set; once its heartbeat is older than the broker's heartbeat timeout,
any other worker's broker call may move them back to the queue. Pages redone that way must
still be written once (the completion barrier's conditional UPDATE).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest
from dramatiq.brokers.redis import RedisBroker

from pipeline.context import Context
from pipeline.settings import Settings
from tests.chaos.harness import (
    CHAOS_DPI,
    CliWorker,
    assert_each_page_once,
    eventually,
    install_audit,
    upload_batch,
)
from tests.fixtures_async import OpenContext
from tests.fixtures_workers import wait_for_document

pytestmark = pytest.mark.anyio

DOCUMENTS = 3
PAGES_PER_DOCUMENT = 5
KILLS = 3
# How long one worker may take to start and OCR its first page (heavily shared 2-core machine), s.
PROGRESS_TIMEOUT_S = 120
# Far below the reaper's delay for aggregating documents (pipeline.maintenance.AGGREGATION_AGE_S), s.
RECOVERY_TIMEOUT_S = 60


async def test_killed_workers_lose_no_page_and_write_none_twice(
    broker: RedisBroker, pipeline_settings: Settings, cli_workers: Callable[..., CliWorker], ctx: Context
) -> None:
    from actors.ocr import ocr_document

    await install_audit(ctx)
    batch = await upload_batch(ctx, DOCUMENTS, PAGES_PER_DOCUMENT)
    for doc_id in batch.ids:
        ocr_document.send(document_id=str(doc_id))
    killed: list[str] = []
    for n in range(KILLS):
        since: datetime = await ctx.store.pool.fetchval("SELECT now()")
        worker = cli_workers(pipeline_settings)

        async def mid_page(since: datetime = since) -> bool:
            # This worker has finished a page and is in the middle of another one.
            return bool(await ctx.store.pool.fetchval(
                "SELECT bool_or(status = 'done' AND finished_at > $1) AND bool_or(status = 'running' "
                "AND started_at > $1) FROM pages", since,
            ))  # fmt: skip

        await eventually(
            mid_page,
            timeout=PROGRESS_TIMEOUT_S,
            what=f"worker {n + 1} to get mid-page",
            alive=worker.alive,
        )
        if n == 1:  # the whole container at once
            worker.kill_all()
            killed.append("process group")
        else:  # one worker process: dramatiq's main process stops the others and exits
            worker.kill_worker_process()
            killed.append("worker process")
    survivor = cli_workers(pipeline_settings)
    for doc_id in batch.ids:
        await wait_for_document(ctx, doc_id, alive=survivor.alive)
    checked = await assert_each_page_once(ctx, batch)
    redone = await ctx.store.pool.fetchval("SELECT count(*) FROM pages WHERE attempts > 1")
    # The kills hit pages while they ran: those were claimed again and redone, yet stored once.
    assert redone >= 1
    print(
        f"\nchaos: {len(killed)} kill -9 ({', '.join(killed)}); {len(batch.ids)} documents, "
        f"{checked} pages, {redone} pages redone, none lost or written twice"
    )


async def test_worker_dead_between_barrier_and_aggregation_send_is_recovered_by_the_redelivery(
    broker: RedisBroker,
    pipeline_settings: Settings,
    cli_workers: Callable[..., CliWorker],
    open_context: OpenContext,
) -> None:
    """The worker whose page closed the barrier died before sending aggregation (kill -9 there).

    Its page message was never acked, so it is delivered again; that delivery finds the page
    done and the document ``aggregating``, and must send aggregation again instead of leaving
    the document to the reaper (minutes later).
    """
    from actors.ocr import ocr_page
    from pipeline import documents

    local = pipeline_settings.model_copy(update={"ocr_engine": "tesseract", "pdf_dpi": CHAOS_DPI})

    ctx = await open_context(local)
    await install_audit(ctx)
    batch = await upload_batch(ctx, 1, 2)
    (doc_id,) = batch.ids
    # What the dead worker did: split the document, record both pages, close the barrier...
    assert (await documents.prepare_document(ctx, doc_id)).to_ocr == [1, 2]
    await documents.process_page(ctx, doc_id, 1)
    outcome = await documents.process_page(ctx, doc_id, 2)
    assert outcome is not None and outcome.closed
    # ... and died before aggregate_document.send. Its page message comes back:
    worker = cli_workers(pipeline_settings)
    ocr_page.send(document_id=str(doc_id), page_no=2)
    await wait_for_document(ctx, doc_id, alive=worker.alive, timeout=RECOVERY_TIMEOUT_S)
    await assert_each_page_once(ctx, batch)
