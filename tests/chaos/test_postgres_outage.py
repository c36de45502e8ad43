"""PostgreSQL out of reach for a few seconds mid-document: messages retry, documents finish.

The worker reaches PostgreSQL through a TCP proxy the test breaks in one of two ways:
``reset`` resets open connections and refuses new ones, as in a failover: pages that hit it
fail, are retried with backoff (production retry settings) and finish once the database is back,
so the worker's pool must replace its dead connections instead of handing them out again;
``stall`` holds every byte for a while, as a congested network does: queries wait and go on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import pytest
from dramatiq.brokers.redis import RedisBroker
from pydantic import SecretStr

from pipeline.context import Context
from pipeline.settings import Settings
from tests.chaos.harness import (
    CliWorker,
    assert_each_page_once,
    eventually,
    install_audit,
    upload_batch,
)
from tests.chaos.servers import TcpProxy
from tests.fixtures_workers import wait_for_document

DOCUMENTS = 3
PAGES_PER_DOCUMENT = 4
# How long PostgreSQL is out of reach, seconds: below the ~7 s the default three retries with
# 1 s minimum backoff always cover (README, PAGEMILL_MIN_BACKOFF_MS).
OUTAGE_S = 4
PROGRESS_TIMEOUT_S = 120


@pytest.mark.parametrize("mode", ["reset", "stall"])
def test_postgres_outage_mid_document_is_retried_and_documents_finish(
    broker: RedisBroker, pipeline_settings: Settings, cli_workers: Callable[..., CliWorker], mode: str
) -> None:
    from actors.ocr import ocr_document

    assert pipeline_settings.database_url is not None
    direct = urlsplit(pipeline_settings.database_url.get_secret_value())
    proxy = TcpProxy(direct.hostname or "127.0.0.1", direct.port or 5432).start()
    netloc = f"{direct.username}@127.0.0.1:{proxy.port}" if direct.username else f"127.0.0.1:{proxy.port}"
    proxied = pipeline_settings.model_copy(
        update={"database_url": SecretStr(urlunsplit(direct._replace(netloc=netloc)))}
    )

    async def scenario() -> None:
        ctx = await Context.open(pipeline_settings)  # the test itself talks to PostgreSQL directly
        try:
            await install_audit(ctx)
            batch = await upload_batch(ctx, DOCUMENTS, PAGES_PER_DOCUMENT)
            worker = cli_workers(proxied)
            for doc_id in batch.ids:
                ocr_document.send(document_id=str(doc_id))

            async def mid_page() -> bool:
                return bool(
                    await ctx.store.pool.fetchval(
                        "SELECT bool_or(status = 'done') AND bool_or(status = 'running') FROM pages"
                    )
                )

            await eventually(mid_page, timeout=PROGRESS_TIMEOUT_S, what="pages in flight", alive=worker.alive)
            severed = proxy.cut() if mode == "reset" else 0
            if mode == "stall":
                proxy.pause()
            await asyncio.sleep(OUTAGE_S)
            proxy.restore()
            proxy.resume()
            for doc_id in batch.ids:
                await wait_for_document(ctx, doc_id, alive=worker.alive)
            checked = await assert_each_page_once(ctx, batch)
            retried = [e for e in worker.events() if e.get("retries", 0) > 0 and e.get("task")]
            if mode == "reset":  # work met the outage: connections were reset, messages ran again afterwards
                assert severed >= 1 and (proxy.refused >= 1 or retried), (severed, proxy.refused)
            else:  # the worker's queries were held up, not lost
                assert proxy.held >= 1, proxy.held
            print(
                f"\nchaos: PostgreSQL {mode} for {OUTAGE_S}s ({severed} connections reset, {proxy.refused} refused, "
                f"{proxy.held} reads held); "
                f"{len(batch.ids)} documents, {checked} pages, {len(retried)} log events of retried messages, "
                "none lost or written twice"
            )
        finally:
            await ctx.aclose()

    try:
        asyncio.run(scenario())
    finally:
        proxy.stop()
