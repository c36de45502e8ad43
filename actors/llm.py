"""Actors on the default queue: LLM post-processing (summary, flashcards, quiz, diagnostics, metadata),
the search index (embeddings) and echo.

Each product actor runs alone by ``document_id`` (artifact only, status untouched) or as a
step of the ``dramatiq.pipeline`` that aggregation sends once the document is
``postprocessing``; the pipeline's last step carries ``finish_as`` and sets that final status.
A step that fails for good ends the document ``partial_error`` with the reason. Every LLM call
first takes a slot of a Redis-backed ``ConcurrentRateLimiter`` shared by all workers
(``PAGEMILL_LLM_MAX_CONCURRENCY``), waiting on the event loop without blocking it.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import dramatiq
import redis
from dramatiq.rate_limits import ConcurrentRateLimiter
from dramatiq.rate_limits.backends import RedisBackend

from actors import runtime
from actors.broker import DEFAULT
from actors.notify import notify_if_final
from actors.postprocess import STEP_ACTORS
from pipeline.artifacts import Artifact
from pipeline.context import Context
from pipeline.documents import finish_postprocessing
from pipeline.errors import PagemillError, PermanentError
from pipeline.jobs import DocumentStatus, parse_id
from pipeline.llm.client import LlmClient
from pipeline.llm.steps import fail_postprocessing, run_product
from pipeline.search import embed_document
from pipeline.settings import Settings

# Errors that retrying cannot fix.
PERMANENT = PermanentError  # every PagemillError that is not retryable (pipeline.errors)
# Time limit of one product (several chunks, retries with Retry-After waits), milliseconds.
PRODUCT_TIME_LIMIT_MS = 30 * 60 * 1000

# Waits between tries for a shared LLM slot, seconds (doubling, with jitter).
SLOT_WAIT_MIN_S, SLOT_WAIT_MAX_S = 0.05, 1.0
# A slot held by a worker that died is freed this long after the limiter key last changed, beyond
# the longest call (timeout x attempts), seconds.
SLOT_TTL_MARGIN_S = 60

def shared_llm_slot(settings: Settings) -> Callable[[], AbstractAsyncContextManager[None]] | None:
    """A factory of async context managers, each holding one of the cluster-wide LLM call slots."""
    if settings.llm_max_concurrency == 0 or not settings.redis_url:
        return None
    backend = RedisBackend(client=redis.Redis.from_url(settings.redis_url))
    ttl_s = settings.llm_timeout_s * (settings.llm_max_retries + 1) + SLOT_TTL_MARGIN_S
    limiter = ConcurrentRateLimiter(
        backend, f"{settings.redis_namespace}:llm-calls", limit=settings.llm_max_concurrency, ttl=int(ttl_s * 1000)
    )

    @asynccontextmanager
    async def slot() -> AsyncIterator[None]:
        wait = SLOT_WAIT_MIN_S
        while True:
            # limiter.acquire is a blocking Redis round trip: run it in a thread, sleep on the loop.
            held = limiter.acquire(raise_on_failure=False)
            if await asyncio.to_thread(held.__enter__):
                break
            await asyncio.to_thread(held.__exit__, None, None, None)
            await asyncio.sleep(wait * random.uniform(0.5, 1.5))
            wait = min(wait * 2, SLOT_WAIT_MAX_S)
        try:
            yield
        finally:
            await asyncio.to_thread(held.__exit__, None, None, None)

    return slot


async def _client(purpose: str = "chat") -> LlmClient:
    """One client per event loop and purpose, kept in the process state (its HTTP pool belongs to the loop).

    ``embeddings`` gets its own client only when PAGEMILL_EMBEDDING_BASE_URL names another server.
    """
    if purpose == "embeddings" and not runtime.settings().embedding_base_url:
        purpose = "chat"

    def make(settings: Settings) -> LlmClient:
        overrides: dict[str, Any] = {"limiter": shared_llm_slot(settings)}
        if purpose == "embeddings":
            overrides["base_url"] = settings.embedding_base_url
        return LlmClient.from_settings(settings, **overrides)

    return await runtime.state.resource(("llm", purpose), make, LlmClient.aclose)


async def _run(ctx: Context, kind: str, document_id: uuid.UUID) -> Artifact:
    if kind == "embeddings":
        return await embed_document(ctx, await _client("embeddings"), document_id)
    return await run_product(ctx, await _client(), document_id, kind)


async def _step(kind: str, document_id: str, finish_as: str | None) -> dict[str, Any]:
    ctx = await runtime.context()
    doc_id = parse_id(document_id)
    try:
        artifact = await _run(ctx, kind, doc_id)
    except PagemillError as exc:
        if not exc.retryable:
            await fail_postprocessing(ctx, doc_id, f"{kind}: {exc.reason}")
            await notify_if_final(document_id)
        raise
    if finish_as is not None:
        await finish_postprocessing(ctx, doc_id, DocumentStatus(finish_as))
        await notify_if_final(document_id)
    return {"document_id": document_id, "kind": kind, "tokens": artifact.tokens}


def _product_actor(kind: str) -> Any:
    async def step(document_id: str, finish_as: str | None = None, **_: Any) -> dict[str, Any]:
        return await _step(kind, document_id, finish_as)

    step.__name__ = STEP_ACTORS[kind].removeprefix("tasks.")
    step.__doc__ = (
        "Embed the document's text chunks for search." if kind == "embeddings"
        else f"Generate the document's {kind} and store it as an artifact."
    )  # fmt: skip
    return dramatiq.actor(
        step,
        actor_name=STEP_ACTORS[kind],
        queue_name=DEFAULT,
        throws=PERMANENT,
        time_limit=PRODUCT_TIME_LIMIT_MS,
        on_retry_exhausted="tasks.llm_step_exhausted",
    )


summarize_document = _product_actor("summary")
generate_flashcards = _product_actor("flashcards")
generate_quiz = _product_actor("quiz")
generate_diagnostics = _product_actor("diagnostics")
generate_metadata = _product_actor("metadata")
embed_document_actor = _product_actor("embeddings")
PRODUCT_ACTORS = {
    "summary": summarize_document,
    "flashcards": generate_flashcards,
    "quiz": generate_quiz,
    "diagnostics": generate_diagnostics,
    "metadata": generate_metadata,
    "embeddings": embed_document_actor,
}


@dramatiq.actor(actor_name="tasks.llm_step_exhausted", queue_name=DEFAULT, throws=PERMANENT)
async def llm_step_exhausted(message_data: dict[str, Any], retry_info: dict[str, Any]) -> None:
    """A step whose retries ran out: the document ends ``partial_error`` with the last error."""
    kwargs = message_data.get("kwargs") or {}
    ctx = await runtime.context()
    kind = message_data["actor_name"]
    await fail_postprocessing(ctx, parse_id(kwargs["document_id"]), f"{kind}: {runtime.last_error(message_data)}")
    await notify_if_final(kwargs["document_id"])


@dramatiq.actor(actor_name="tasks.echo", queue_name=DEFAULT, max_retries=0)
def echo(*args: Any, **kwargs: Any) -> Any:
    """Return the payload unchanged (the seed's smoke test: ``echo.delay({"hello": "world"})``)."""
    if kwargs and not args:
        return kwargs.get("payload", kwargs)
    return args[0] if len(args) == 1 else list(args)
