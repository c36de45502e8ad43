"""A PostgreSQL with pgvector for the search tests, beside the machine's (which may lack it).

Debian 12's PostgreSQL 15 has no pgvector package, so the session starts the embedded
``pgserver`` (PostgreSQL 16 with pgvector 0.6), the one ``pagemill`` itself embeds. Point
PAGEMILL_TEST_PGVECTOR_URL at another server with the extension to use that instead. The
machine's PostgreSQL (``database_url``) stays the server *without* pgvector, so the missing
extension path is tested against a real server too.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from pydantic import SecretStr

from pipeline.settings import Settings
from tests.fixtures_services import drop_schema
from tests.llm.chat_server import ChatServer
from tests.llm.conftest import chat_server, web_client  # noqa: F401 - fixtures shared with tests/llm

PGVECTOR_URL = os.environ.get("PAGEMILL_TEST_PGVECTOR_URL")


@pytest.fixture(scope="session")
def pgvector_url() -> Iterator[str]:
    """A PostgreSQL server that has pgvector; fails the session if none can be had."""
    if PGVECTOR_URL:
        yield PGVECTOR_URL
        return
    import pgserver

    # Short path: the server's unix socket lives in it (limit ~107 bytes).
    pgdata = Path(tempfile.mkdtemp(prefix="pm-pgv-"))
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    try:
        uri = server.get_uri()

        async def check() -> None:
            conn = await asyncpg.connect(uri)
            try:
                assert await conn.fetchval("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"), (
                    "the embedded pgserver carries no pgvector"
                )
            finally:
                await conn.close()

        asyncio.run(check())
        yield uri
    finally:
        server.cleanup()
        shutil.rmtree(pgdata, ignore_errors=True)


@pytest.fixture
def vector_schema(pgvector_url: str) -> Iterator[str]:
    """A fresh schema in the pgvector database for one test, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    yield schema
    drop_schema(pgvector_url, schema)


def search_settings(base: Settings, server: ChatServer, **overrides: object) -> Settings:
    """``base`` with the openai client pointed at the stand-in (chat and embeddings)."""
    values: dict[str, object] = {
        "openai_base_url": server.base_url,
        "openai_api_key": SecretStr("test-key"),
        "openai_model": "test-model",
        "embedding_model": "test-embedding",
        "llm_context_tokens": 300,
        "llm_timeout_s": 10.0,
        "chunk_chars": 400,
        "embedding_batch": 8,
    }
    values.update(overrides)
    return base.model_copy(update=values)


@pytest.fixture
def vector_settings(
    pipeline_settings: Settings, pgvector_url: str, vector_schema: str, chat_server: ChatServer  # noqa: F811
) -> Settings:
    """Per-test settings on the pgvector database, the stand-in as LLM and embeddings server."""
    return search_settings(
        pipeline_settings, chat_server, database_url=SecretStr(pgvector_url), db_schema=vector_schema
    )


@pytest.fixture
def plain_settings(pipeline_settings: Settings, chat_server: ChatServer) -> Settings:  # noqa: F811
    """Per-test settings on the machine's PostgreSQL, which has no pgvector."""
    return search_settings(pipeline_settings, chat_server)
