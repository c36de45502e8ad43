"""The ``pagemill`` click group, the stderr console, and the job store for commands that only read it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click
from rich.console import Console

from pipeline.jobs import JobStore
from pipeline.settings import Settings

T = TypeVar("T")

# Progress, messages and errors; stdout is for results (text, JSON) only.
err = Console(stderr=True)


@click.group()
@click.version_option(package_name="pagemill")
def main() -> None:
    """pagemill: document OCR on Dramatiq, Redis, PostgreSQL and S3."""


def with_job_store(work: Callable[[JobStore, Settings], Awaitable[T]], *, migrate: bool = True) -> T:
    """Run ``work(store, settings)`` against the job store (the embedded PostgreSQL if none is set; no broker)."""
    from pagemill.embedded import embedded_services

    with embedded_services(Settings(), redis=False) as live:

        async def run() -> T:
            assert live.database_url is not None
            store = await JobStore.connect(live.database_url.get_secret_value(), schema=live.db_schema, migrate=migrate)
            try:
                return await work(store, live)
            finally:
                await store.aclose()

        return asyncio.run(run())
