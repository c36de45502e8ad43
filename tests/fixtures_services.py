"""Real PostgreSQL and Redis for tests: a server per session, a clean slice per test.

A missing service fails the run (no quiet skips). Override the servers with
PAGEMILL_TEST_DATABASE_URL and PAGEMILL_TEST_REDIS_URL.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis

from pipeline.settings import ExplicitSettings, Settings

TEST_DATABASE_URL = os.environ.get("PAGEMILL_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
TEST_REDIS_URL = os.environ.get("PAGEMILL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RESOURCES = Path(__file__).parent / "resources"


@pytest.fixture(scope="session")
def resources() -> Path:
    """Real page images and PDFs shipped with the tests."""
    return RESOURCES


@pytest.fixture(scope="session")
def database_url() -> str:
    """The test PostgreSQL server; fails the session if it is down."""

    async def ping() -> None:
        conn = await asyncpg.connect(TEST_DATABASE_URL, timeout=5)
        await conn.close()

    try:
        asyncio.run(ping())
    except Exception as exc:  # noqa: BLE001 - any failure means the service is missing
        pytest.fail(f"PostgreSQL at {TEST_DATABASE_URL} is not reachable ({exc}); start it (see DESIGN.md)")
    return TEST_DATABASE_URL


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The test Redis server; fails the session if it is down."""
    try:
        redis.Redis.from_url(TEST_REDIS_URL, socket_timeout=5).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis at {TEST_REDIS_URL} is not reachable ({exc}); start it (see DESIGN.md)")
    return TEST_REDIS_URL


@pytest.fixture
def db_schema(database_url: str) -> Iterator[str]:
    """A fresh PostgreSQL schema for one test, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    yield schema
    drop_schema(database_url, schema)


def drop_schema(database_url: str, schema: str) -> None:
    """Drop a test's PostgreSQL schema and everything in it."""

    async def drop() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    asyncio.run(drop())


@pytest.fixture
def make_settings(
    database_url: str, redis_url: str, db_schema: str, tmp_path: Path
) -> Callable[..., Settings]:
    """Settings for one test: its own schema, data dir; no environment read."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "redis_url": redis_url,
            "database_url": database_url,
            "db_schema": db_schema,
            "data_dir": tmp_path / "data",
            "ocr_engine": "onnx",
            "min_backoff_ms": 50,
            "max_backoff_ms": 200,
            "ocr_threads": 1,
        }
        values.update(overrides)
        return ExplicitSettings(**values)

    return make
