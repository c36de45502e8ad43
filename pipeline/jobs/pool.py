"""The job store's connection pool: JSON codecs, schema search path, and timeouts that fail loudly."""

from __future__ import annotations

import json

import asyncpg

# Statement timeout for every job-store query, milliseconds: a stuck lock fails loudly.
STATEMENT_TIMEOUT_MS = 30_000
# Client-side limit per query, seconds: a connection whose packets vanish (no reset, no answer)
# fails after this instead of hanging until the page time limit; longer than the server's own.
COMMAND_TIMEOUT_S = STATEMENT_TIMEOUT_MS / 1000 + 15


async def _init_connection(conn: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(type_name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")



async def create_pool(dsn: str, *, schema: str, max_size: int, command_timeout_s: float = COMMAND_TIMEOUT_S) -> asyncpg.Pool:
    """A pool whose connections use ``schema`` and decode JSON columns."""
    return await asyncpg.create_pool(
        dsn,
        min_size=1,
        max_size=max_size,
        command_timeout=command_timeout_s,
        init=_init_connection,
        server_settings={"search_path": schema, "statement_timeout": str(STATEMENT_TIMEOUT_MS)},
    )
