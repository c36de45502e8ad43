"""Real Dramatiq workers on the real Redis: one broker per test session, a clean slice per test."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from dramatiq import Worker
from dramatiq.brokers.redis import RedisBroker

from pipeline.context import Context
from pipeline.jobs import Document, DocumentStatus
from pipeline.settings import ExplicitSettings, Settings

ROOT = Path(__file__).resolve().parents[1]


def run_in_context(settings: Settings, work: Callable[[Context], Any]) -> Any:
    """Run ``await work(ctx)`` on a fresh pipeline context (pool and storage), closed afterwards."""

    async def go() -> Any:
        ctx = await Context.open(settings)
        try:
            return await work(ctx)
        finally:
            await ctx.aclose()

    return asyncio.run(go())


def worker_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment a Procfile line gives a ``dramatiq`` worker, for the test's slice.

    Services, schema, namespace, data dir, engine and S3 come from ``settings``; ``extra`` last.
    """
    assert settings.redis_url and settings.database_url
    env = dict(os.environ)
    env.update(
        REDIS_URL=settings.redis_url,
        DATABASE_URL=settings.database_url.get_secret_value(),
        PAGEMILL_DB_SCHEMA=settings.db_schema,
        PAGEMILL_REDIS_NAMESPACE=settings.redis_namespace,
        PAGEMILL_DATA_DIR=str(settings.data_dir),
        PAGEMILL_OCR_ENGINE=settings.ocr_engine,
        PAGEMILL_OCR_THREADS="1",
        PAGEMILL_LOG_FORMAT="json",
        PYTHONPATH=str(ROOT),
    )
    for name in ("S3_ENDPOINT_URL", "S3_REGION", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY", "S3_BUCKET"):
        env.pop(name, None)
    if settings.s3_bucket:
        secret = settings.s3_secret_access_key
        env.update(
            S3_ENDPOINT_URL=settings.s3_endpoint_url or "",
            S3_REGION=settings.s3_region,
            S3_ACCESS_KEY_ID=settings.s3_access_key_id or "",
            S3_SECRET_ACCESS_KEY=secret.get_secret_value() if secret else "",
            S3_BUCKET=settings.s3_bucket,
        )
    env.update(extra)
    return env

# How long a test waits for a document to reach a final state, seconds.
DOCUMENT_TIMEOUT_S = 180


@pytest.fixture(scope="session")
def broker_settings(redis_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings the session's broker is built from: a Redis namespace of its own, fast retries."""
    return ExplicitSettings(
        redis_url=redis_url,
        redis_namespace=f"pagemill-test-{uuid.uuid4().hex[:10]}",
        database_url=database_url,
        data_dir=tmp_path_factory.mktemp("data"),
        ocr_engine="onnx",
        ocr_threads=1,
        min_backoff_ms=50,
        max_backoff_ms=200,
    )


@pytest.fixture(scope="session")
def broker(broker_settings: Settings) -> Iterator[RedisBroker]:
    """The process's broker, with pagemill's actors declared on it."""
    from actors.broker import setup_broker

    the_broker = setup_broker(broker_settings)
    import actors.llm
    import actors.maintenance
    import actors.ocr  # noqa: F401

    yield the_broker
    the_broker.flush_all()
    the_broker.close()


@pytest.fixture
def pipeline_settings(broker_settings: Settings, db_schema: str, tmp_path: Path) -> Settings:
    """Per-test settings: own schema and data dir, same broker."""
    return broker_settings.model_copy(update={"db_schema": db_schema, "data_dir": tmp_path / "data"})


@pytest.fixture
def start_worker(broker: RedisBroker, pipeline_settings: Settings) -> Iterator[Callable[..., Worker]]:
    """Start an in-process Dramatiq worker (stopped at the end of the test)."""
    from actors import runtime

    workers: list[Worker] = []
    broker.flush_all()

    def start(settings: Settings | None = None, threads: int = 2) -> Worker:
        runtime.use_settings(settings or pipeline_settings)
        worker = Worker(broker, worker_threads=threads, worker_timeout=100)
        worker.start()
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop(timeout=30_000)
        # Dramatiq never takes a stopped worker's _WorkerMiddleware off the broker: a queue declared
        # later (a test-only actor) would give the stopped worker a consumer that prefetches messages
        # no thread processes, and the next test's worker never sees them.
        broker.middleware[:] = [m for m in broker.middleware if getattr(m, "worker", None) is not worker]
    # Worker shutdown closes the pools, S3 clients and LLM clients it opened (a leak shows up here).
    assert runtime.state.open_count() == 0, "a context or LLM client outlived its worker"
    runtime.use_settings(None)
    broker.flush_all()


async def wait_for_document(
    ctx: Context,
    document_id: uuid.UUID,
    *,
    states: set[DocumentStatus] | None = None,
    timeout: float = DOCUMENT_TIMEOUT_S,
    alive: Callable[[], bool] | None = None,
) -> Document:
    """Poll the job store until the document reaches one of ``states`` (final states by default).

    ``alive`` says whether the workers are still running; the wait fails at once when not.
    """
    from pipeline.jobs import FINAL_DOCUMENT_STATES

    wanted = states or set(FINAL_DOCUMENT_STATES)
    deadline = time.monotonic() + timeout
    while True:
        doc = await ctx.store.get_document(document_id)
        if doc.status in wanted:
            return doc
        if alive is not None and not alive():
            raise AssertionError(f"the worker died while the document was {doc.status}")
        if time.monotonic() > deadline:
            pages = await ctx.store.list_pages(document_id)
            raise AssertionError(
                f"document stuck in {doc.status} after {timeout}s; pages: "
                + ", ".join(f"{p.page_no}:{p.status}" for p in pages)
            )
        await asyncio.sleep(0.1)


async def chunks_of(data: bytes, size: int = 64 * 1024) -> Any:
    """An async byte stream, as an upload arrives."""
    for i in range(0, len(data), size):
        yield data[i : i + size]
