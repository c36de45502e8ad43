"""PAGEMILL_LLM_MAX_CONCURRENCY holds across worker processes (Dramatiq's Redis ConcurrentRateLimiter)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import redis
from dramatiq.brokers.redis import RedisBroker

from pipeline import artifacts
from pipeline.context import Context
from pipeline.jobs import DocumentStatus, PageStatus
from pipeline.settings import Settings
from tests.fixtures_workers import ROOT, worker_env
from tests.llm.chat_server import ChatServer

WORKERS = 2
THREADS_PER_WORKER = 3
LIMIT = 2
DOCUMENTS = 4
PAGES_PER_DOCUMENT = 4
WAIT_S = 180


async def _document_with_text(ctx: Context, n: int) -> uuid.UUID:
    """A completed document whose pages hold text (no OCR needed to test the LLM side)."""
    doc = await ctx.store.create_document(document_id=uuid.uuid4(), source_key=f"documents/limit-{n}/source.pdf")
    await ctx.store.start_pages(doc.id, kind="pdf", page_count=PAGES_PER_DOCUMENT, engine="none")
    for page in range(1, PAGES_PER_DOCUMENT + 1):
        text = f"Topic {n}.{page}. " + "The mitochondria make energy for the cell. " * 25
        await ctx.store.finish_page(doc.id, page, PageStatus.DONE, text=text)
    await ctx.store.set_status(doc.id, DocumentStatus.COMPLETED)
    return doc.id


def test_llm_calls_in_flight_never_exceed_the_shared_limit(
    broker: RedisBroker, pipeline_settings: Settings, chat_server: ChatServer, tmp_path: Path
) -> None:
    from actors.llm import generate_flashcards

    broker.flush_all()
    chat_server.modes = ["slow"] * 200
    chat_server.slow_s = 0.3
    env = worker_env(pipeline_settings) | {
        "OPENAI_BASE_URL": chat_server.base_url,
        "OPENAI_API_KEY": "test-key",
        "OPENAI_MODEL": "test-model",
        "PAGEMILL_LLM_CONTEXT_TOKENS": "300",  # one chunk per page
        "PAGEMILL_LLM_CONCURRENCY": "8",  # each process alone would send far more than LIMIT
        "PAGEMILL_LLM_MAX_CONCURRENCY": str(LIMIT),
    }
    procs = []
    for n in range(WORKERS):
        with (tmp_path / f"worker-{n}.log").open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "dramatiq", "actors.broker:setup_broker", "actors.llm", "--queues", pipeline_settings.default_queue,
                 "--processes", "1", "--threads", str(THREADS_PER_WORKER)],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        procs.append(proc)
    try:

        async def scenario() -> list[int]:
            ctx = await Context.open(pipeline_settings)
            try:
                ids = [await _document_with_text(ctx, n) for n in range(DOCUMENTS)]
                for doc_id in ids:
                    await asyncio.to_thread(generate_flashcards.send, document_id=str(doc_id))
                deadline = time.monotonic() + WAIT_S
                while True:
                    made = await ctx.store.pool.fetchval(
                        "SELECT count(*) FROM artifacts WHERE kind = 'flashcards' AND document_id = ANY($1)", ids
                    )
                    if made == DOCUMENTS:
                        break
                    assert all(p.poll() is None for p in procs), "a worker died (see worker-*.log)"
                    assert time.monotonic() < deadline, f"only {made} of {DOCUMENTS} decks after {WAIT_S}s"
                    await asyncio.sleep(0.2)
                return [(await artifacts.get_artifact(ctx.store, i, "flashcards")).data["usage"]["calls"] for i in ids]
            finally:
                await ctx.aclose()

        calls = asyncio.run(scenario())
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=60)

    assert calls == [PAGES_PER_DOCUMENT] * DOCUMENTS  # one call per page, every document done
    assert len(chat_server.requests) == DOCUMENTS * PAGES_PER_DOCUMENT
    assert chat_server.max_active <= LIMIT, f"{chat_server.max_active} calls were in flight at once"
    assert chat_server.max_active == LIMIT  # the workers did run calls side by side, up to the limit
    # Every slot was given back.
    assert pipeline_settings.redis_url
    client = redis.Redis.from_url(pipeline_settings.redis_url)
    assert int(client.get(f"{pipeline_settings.redis_namespace}:llm-calls") or 0) == 0
