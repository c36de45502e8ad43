"""SIGTERM to a CLI worker while pages run: nothing half-written, the documents complete later.

``dramatiq --worker-shutdown-timeout`` is how long running messages may take after SIGTERM.
Within it the running pages finish and are recorded; past it the worker leaves them unacked,
they come back after the broker's heartbeat timeout and are redone, still recorded once.
Messages the worker had prefetched but not started go back to the queue at once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest
from dramatiq.brokers.redis import RedisBroker

from pipeline import documents
from pipeline.context import Context
from pipeline.settings import Settings
from tests.chaos.harness import (
    CliWorker,
    assert_each_page_once,
    audit_counts,
    eventually,
    install_audit,
    upload_batch,
)
from tests.fixtures_workers import wait_for_document

DOCUMENTS = 2
PAGES_PER_DOCUMENT = 4
# Rendered at this resolution a page takes tesseract a second or more: SIGTERM lands mid-page.
SLOW_DPI = 200
PROGRESS_TIMEOUT_S = 120


@pytest.mark.parametrize(
    ("shutdown_timeout_ms", "running_pages_end"),
    [(60_000, "done"), (200, "running")],
    ids=["pages-finish-within-timeout", "timeout-shorter-than-a-page"],
)
def test_sigterm_mid_page_leaves_nothing_half_written(
    broker: RedisBroker,
    pipeline_settings: Settings,
    cli_workers: Callable[..., CliWorker],
    shutdown_timeout_ms: int,
    running_pages_end: str,
) -> None:
    from actors.ocr import ocr_document

    async def scenario() -> None:
        ctx = await Context.open(pipeline_settings)
        try:
            await install_audit(ctx)
            batch = await upload_batch(ctx, DOCUMENTS, PAGES_PER_DOCUMENT, dpi=SLOW_DPI)
            worker = cli_workers(
                pipeline_settings, args=["--worker-shutdown-timeout", str(shutdown_timeout_ms)]
            )
            for doc_id in batch.ids:
                ocr_document.send(document_id=str(doc_id))

            async def running() -> list[tuple[uuid.UUID, int]]:
                rows = await ctx.store.pool.fetch(
                    "SELECT document_id, page_no FROM pages WHERE status = 'running'"
                )
                return [(r["document_id"], r["page_no"]) for r in rows]

            in_flight = await eventually(
                running, timeout=PROGRESS_TIMEOUT_S, what="a page to be running", alive=worker.alive
            )
            rc = worker.terminate()
            assert rc == 0, worker.log_tail()
            for doc_id, page_no in in_flight:
                page = await ctx.store.get_page(doc_id, page_no)
                assert page.status.value == running_pages_end, page
            await _assert_consistent(ctx, batch.ids)

            survivor = cli_workers(pipeline_settings)
            for doc_id in batch.ids:
                await wait_for_document(ctx, doc_id, alive=survivor.alive)
            checked = await assert_each_page_once(ctx, batch)
            print(
                f"\nchaos: SIGTERM with {len(in_flight)} page(s) running, shutdown timeout {shutdown_timeout_ms} ms: "
                f"they ended {running_pages_end}; {len(batch.ids)} documents, {checked} pages completed once"
            )
        finally:
            await ctx.aclose()

    asyncio.run(scenario())


async def _assert_consistent(ctx: Context, doc_ids: list[uuid.UUID]) -> None:
    """After the worker stopped: no results of unfinished documents, counters match page rows."""
    writes = await audit_counts(ctx, "page")
    for doc_id in doc_ids:
        doc = await ctx.store.get_document(doc_id)
        pages = await ctx.store.list_pages(doc_id)
        final = [p for p in pages if p.status.is_final]
        assert doc.pages_finished == len(final), (doc.pages_finished, [(p.page_no, p.status) for p in pages])
        for page in final:
            assert page.text is not None and writes.get((doc_id, page.page_no)) == ["done"], page
        if not doc.status.is_final:
            for suffix in ("txt", "json"):
                assert not await ctx.storage.exists(documents.result_key(doc_id, suffix)), (doc_id, suffix)
