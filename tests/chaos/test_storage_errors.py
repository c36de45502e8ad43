"""S3 answering 500 or stalling: retried to success, or a readable failure when it never recovers.

Workers reach the moto S3 server through a proxy that injects the faults; the test itself
talks to the server directly.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable

import pytest

from actors.ocr import ocr_document
from pipeline import documents
from pipeline.jobs import DocumentStatus
from pipeline.settings import Settings
from tests.chaos.harness import Batch, CliWorker, assert_each_page_once, install_audit, upload_batch
from tests.chaos.s3_proxy import S3FaultProxy
from tests.fixtures_async import OpenContext
from tests.fixtures_workers import wait_for_document

pytestmark = pytest.mark.anyio

S3_FIELDS = ("s3_endpoint_url", "s3_region", "s3_access_key_id", "s3_secret_access_key", "s3_bucket")
# Every FLAKY_EVERY-th request answers 500, every STALL_EVERY-th GET is held STALL_S seconds.
FLAKY_EVERY = 2
STALL_EVERY = 3
STALL_S = 1.5
# Give up soon when storage never recovers: one retry, short backoff (production: 3, 1-60 s).
FAST_GIVE_UP = {
    "PAGEMILL_MAX_RETRIES": "1",
    "PAGEMILL_MIN_BACKOFF_MS": "100",
    "PAGEMILL_MAX_BACKOFF_MS": "500",
}


@pytest.fixture
def s3_pipeline_settings(pipeline_settings: Settings, s3_settings: Settings) -> Settings:
    """The test's settings on its own bucket of the S3 server."""
    return pipeline_settings.model_copy(update={f: getattr(s3_settings, f) for f in S3_FIELDS})


async def test_flaky_and_slow_s3_is_retried_and_documents_complete(
    s3_pipeline_settings: Settings, cli_workers: Callable[..., CliWorker], open_context: OpenContext
) -> None:
    settings = s3_pipeline_settings
    counter = itertools.count(1)
    lock = threading.Lock()

    def fault(method: str, path: str) -> str | float | None:
        with lock:
            n = next(counter)
        if n % FLAKY_EVERY == 0:
            return "500"
        if method == "GET" and n % STALL_EVERY == 0:
            return STALL_S
        return None

    proxy = S3FaultProxy(settings.s3_endpoint_url or "", fault).start()

    try:
        ctx = await open_context(settings)
        await install_audit(ctx)
        batch = await upload_batch(ctx, 2, 3)
        worker = cli_workers(settings.model_copy(update={"s3_endpoint_url": proxy.url}))
        for doc_id in batch.ids:
            ocr_document.send(document_id=str(doc_id))
        for doc_id in batch.ids:
            await wait_for_document(ctx, doc_id, alive=worker.alive)
        checked = await assert_each_page_once(ctx, batch)
        assert proxy.injected["500"] >= 2, proxy.injected
        print(
            f"\nchaos: S3 faults {proxy.injected}; {len(batch.ids)} documents, {checked} pages, all completed"
        )
    finally:
        proxy.stop()


async def test_s3_that_keeps_failing_ends_documents_with_a_readable_reason(
    s3_pipeline_settings: Settings, cli_workers: Callable[..., CliWorker], open_context: OpenContext
) -> None:
    settings = s3_pipeline_settings
    broken: dict[str, str] = {}  # path fragment -> method that always fails on it

    def fault(method: str, path: str) -> str | None:
        return "500" if any(frag in path and method == m for frag, m in broken.items()) else None

    proxy = S3FaultProxy(settings.s3_endpoint_url or "", fault).start()

    try:
        ctx = await open_context(settings)
        await install_audit(ctx)
        batch = await upload_batch(ctx, 3, 2)
        unreadable, unwritable, fine = batch.ids
        broken[f"{unreadable}/source."] = "GET"  # the source cannot be fetched
        broken[f"{unwritable}/result."] = "PUT"  # the results cannot be stored
        worker = cli_workers(settings.model_copy(update={"s3_endpoint_url": proxy.url}), env=FAST_GIVE_UP)
        for doc_id in batch.ids:
            ocr_document.send(document_id=str(doc_id))
        done = {doc_id: await wait_for_document(ctx, doc_id, alive=worker.alive) for doc_id in batch.ids}
        for doc_id, doing in ((unreadable, "reading"), (unwritable, "storing")):
            doc = done[doc_id]
            assert doc.status is DocumentStatus.ERROR, (doc.status, doc.error)
            reason = doc.error or ""
            assert f"S3 failed while {doing} 'documents/{doc_id}/" in reason, reason
            assert "Traceback" not in reason and "will be retried" not in reason, reason
        # Nothing half-written: the document whose results could not be stored has none.
        assert not await ctx.storage.exists(documents.result_key(unwritable, "json"))
        # The other document was not held up.
        checked = await assert_each_page_once(ctx, Batch({fine: batch.expected[fine]}))
        assert proxy.injected["500"] >= 8, proxy.injected  # four attempts per call, two calls each
        print(
            f"\nchaos: S3 kept failing ({proxy.injected['500']} answers 500) for 2 of 3 documents: both "
            f"ended error with a storage reason; the third completed ({checked} pages)"
        )
    finally:
        proxy.stop()
