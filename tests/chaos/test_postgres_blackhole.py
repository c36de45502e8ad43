"""PostgreSQL whose packets vanish (no reset, no answer): a query fails after the job store's
client-side timeout instead of hanging until the page time limit."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit, urlunsplit

from pipeline.jobs import JobStore
from tests.chaos.servers import TcpProxy

# A short client-side limit for the test (production: jobs.COMMAND_TIMEOUT_S), seconds.
TIMEOUT_S = 1.0


def test_query_on_a_silent_connection_times_out(database_url: str, db_schema: str) -> None:
    direct = urlsplit(database_url)
    proxy = TcpProxy(direct.hostname or "127.0.0.1", direct.port or 5432).start()
    netloc = f"{direct.username}@127.0.0.1:{proxy.port}" if direct.username else f"127.0.0.1:{proxy.port}"

    async def scenario() -> float:
        store = await JobStore.connect(
            urlunsplit(direct._replace(netloc=netloc)), schema=db_schema, command_timeout_s=TIMEOUT_S
        )
        try:
            assert await store.pool.fetchval("SELECT 1") == 1
            proxy.pause()  # hold every byte: the server never sees the query, the client never hears back
            started = time.monotonic()
            try:
                await store.pool.fetchval("SELECT 2")
            except TimeoutError:
                return time.monotonic() - started
            raise AssertionError("a query on a silent connection must time out")
        finally:
            proxy.resume()
            await asyncio.wait_for(store.pool.close(), 30)

    try:
        waited = asyncio.run(scenario())
    finally:
        proxy.stop()
    assert waited >= TIMEOUT_S * 0.9  # it did wait for the answer; the limit, not an error, ended it
