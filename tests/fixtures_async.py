"""Async tests on the anyio plugin: the backend, and pipeline contexts that fixtures open and close.

Mark a test ``pytest.mark.anyio`` and take ``ctx`` (a context on ``pipeline_settings``) or
``open_context`` (contexts on other settings); both are closed on the test's own event loop
after the test, whether it passed or not.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack

import pytest

from pipeline.context import Context
from pipeline.jobs import JobStore
from pipeline.settings import Settings

# Opens a context on the given settings (``migrate`` as for ``Context.open``), closed at teardown.
OpenContext = Callable[..., Awaitable[Context]]


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """Run async tests on asyncio only: the pipeline uses asyncpg, which needs it."""
    return "asyncio"


@pytest.fixture
async def ctx(pipeline_settings: Settings) -> AsyncIterator[Context]:
    """A pipeline context (pool and storage) on the test's settings."""
    context = await Context.open(pipeline_settings)
    try:
        yield context
    finally:
        await context.aclose()


@pytest.fixture
async def open_context() -> AsyncIterator[OpenContext]:
    """Open pipeline contexts on any settings; every one is closed at teardown, newest first."""
    async with AsyncExitStack() as stack:

        async def open_(settings: Settings, *, migrate: bool = True) -> Context:
            context = await Context.open(settings, migrate=migrate)
            stack.push_async_callback(context.aclose)
            return context

        yield open_


@pytest.fixture
async def store(database_url: str, db_schema: str) -> AsyncIterator[JobStore]:
    """The job store alone (no storage), on the test's schema."""
    job_store = await JobStore.connect(database_url, schema=db_schema)
    try:
        yield job_store
    finally:
        await job_store.aclose()
