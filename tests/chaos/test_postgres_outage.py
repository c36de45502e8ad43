"""PostgreSQL out of reach for a few seconds mid-document: messages retry, documents finish.

The worker reaches PostgreSQL through a TCP proxy the test cuts: open connections are reset
and new ones refused, as in a failover. Pages that hit the outage fail, are retried with
backoff (production retry settings) and finish once the database is back; the worker's
connection pool must replace its dead connections instead of handing them out again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

from dramatiq.brokers.redis import RedisBroker
from pydantic import SecretStr

from pipeline.context import Context
from pipeline.settings import Settings
from tests.chaos.harness import (
    CliWorker,
    TcpProxy,
    assert_each_page_once,
    eventually,
    install_audit,
    upload_batch,
)
from tests.fixtures_workers import wait_for_document

DOCUMENTS = 3
PAGES_PER_DOCUMENT = 4
# How long PostgreSQL is out of reach, seconds: below the ~7 s the default three retries with
# 1 s minimum backoff always cover (README, PAGEMILL_MIN_BACKOFF_MS).
OUTAGE_S = 4
PROGRESS_TIMEOUT_S = 120


def test_postgres_outage_mid_document_is_retried_and_documents_finish(
    broker: RedisBroker, pipeline_settings: Settings, cli_workers: Callable[..., CliWorker]
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
            severed = proxy.cut()
            await asyncio.sleep(OUTAGE_S)
            proxy.restore()
            for doc_id in batch.ids:
                await wait_for_document(ctx, doc_id, alive=worker.alive)
            checked = await assert_each_page_once(ctx, batch)
            retried = [e for e in worker.events() if e.get("retries", 0) > 0 and e.get("task")]
            # Work did meet the outage: connections were reset, and messages ran again afterwards.
            assert severed >= 1 and (proxy.refused >= 1 or retried), (severed, proxy.refused)
            print(
                f"\nchaos: PostgreSQL cut for {OUTAGE_S}s ({severed} connections reset, {proxy.refused} refused); "
                f"{len(batch.ids)} documents, {checked} pages, {len(retried)} log events of retried messages, "
                "none lost or written twice"
            )
        finally:
            await ctx.aclose()

    try:
        asyncio.run(scenario())
    finally:
        proxy.stop()
