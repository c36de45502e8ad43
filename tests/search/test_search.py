"""Embeddings and hybrid search on a real PostgreSQL with pgvector, through the real openai client.

The stand-in server's vectors come from the text (hashed character n-grams), so a query is near
the documents it shares word stems with: a ranking bug, a lost vector or a broken fusion fails here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest

from pipeline.artifacts import document_tokens, get_artifact
from pipeline.context import Context
from pipeline.llm.client import LlmClient
from pipeline.llm.errors import LlmUnavailableError
from pipeline.maintenance import purge_expired
from pipeline.search import SearchMode, embed_document, search
from pipeline.search.query import SearchQueryError
from pipeline.settings import Settings
from tests.llm.chat_server import ChatServer
from tests.search.corpus import INVOICE_FILE, INVOICE_NUMBER, TOPICS, add_text_document


def run(settings: Settings, scenario: Callable[[Context, LlmClient], Awaitable[Any]]) -> Any:
    """``scenario(ctx, client)`` on a fresh context and LLM client for ``settings``."""

    async def go() -> Any:
        ctx = await Context.open(settings)
        client = LlmClient.from_settings(settings)
        try:
            return await scenario(ctx, client)
        finally:
            await client.aclose()
            await ctx.aclose()

    return asyncio.run(go())


def embedder(client: LlmClient, settings: Settings) -> Callable[[str], Awaitable[list[float]]]:
    async def embed(text: str) -> list[float]:
        return (await client.embed([text], model=settings.embedding_model)).vectors[0]

    return embed


def test_paraphrases_find_their_documents_and_exact_numbers_their_invoice(
    vector_settings: Settings, chat_server: ChatServer
) -> None:
    async def scenario(ctx: Context, client: LlmClient) -> None:
        ids = {}
        for topic in TOPICS:
            doc = await add_text_document(ctx.store, topic.filename, topic.pages)
            await embed_document(ctx, client, doc.id)
            ids[topic.filename] = doc.id
        embed = embedder(client, vector_settings)
        for topic in (t for t in TOPICS if t.query):
            found = await search(ctx.store, topic.query, embed=embed, limit=5)
            names = [h.filename for h in found.hits]
            assert names[0] == topic.filename, (topic.query, names)
            best = found.hits[0].matches[0]
            assert best.vector_rank == 1 and best.similarity is not None and best.page_no >= 1
            # A paraphrase: its words are not all in the document, so full-text search alone misses it.
            text_only = await search(ctx.store, topic.query, embed=None, mode=SearchMode.TEXT, limit=5)
            assert topic.filename not in [h.filename for h in text_only.hits], topic.query
        # Look-alike invoice numbers: the exact one is first, carried by the full-text half.
        found = await search(ctx.store, INVOICE_NUMBER, embed=embed, limit=5)
        assert found.hits[0].filename == INVOICE_FILE, [h.filename for h in found.hits]
        assert found.hits[0].matches[0].text_rank == 1
        assert INVOICE_NUMBER in found.hits[0].matches[0].snippet
        assert all(m.text_rank is None for h in found.hits[1:] for m in h.matches)
        # Every chunk was stored with a vector, and the HNSW index for its size exists.
        missing = await ctx.store.pool.fetchval("SELECT count(*) FROM chunks WHERE embedding IS NULL")
        assert missing == 0
        index = await ctx.store.pool.fetchval(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND indexname = 'chunks_embedding_256'"
        )
        assert index is not None and "hnsw" in index and "vector_cosine_ops" in index

    run(vector_settings, scenario)


def test_embeddings_count_tokens_and_rerun_replaces_chunks(vector_settings: Settings, chat_server: ChatServer) -> None:
    topic = TOPICS[0]

    async def scenario(ctx: Context, client: LlmClient) -> None:
        doc = await add_text_document(ctx.store, topic.filename, topic.pages)
        first = await embed_document(ctx, client, doc.id)
        assert first.data["chunks"] == 2 and first.data["dims"] == 256 and first.data["pages"] == [1, 2]
        reported = sum(u["total_tokens"] for u in chat_server.usage)
        assert first.tokens == first.data["usage"]["total_tokens"] == reported > 0
        assert await document_tokens(ctx.store, doc.id) == reported
        rows = await ctx.store.pool.fetch(
            "SELECT page_no, char_start, char_end, text FROM chunks WHERE document_id = $1 ORDER BY chunk_no", doc.id
        )
        assert [(r["page_no"], topic.pages[r["page_no"] - 1][r["char_start"] : r["char_end"]]) for r in rows] == [
            (r["page_no"], r["text"]) for r in rows
        ]
        # A failed re-run (server errors, no retries left) leaves the stored chunks as they were ...
        failing = LlmClient.from_settings(vector_settings, max_retries=0)
        chat_server.embedding_modes.append("500")
        try:
            with pytest.raises(LlmUnavailableError):
                await embed_document(ctx, failing, doc.id)
        finally:
            await failing.aclose()
        assert await ctx.store.pool.fetchval("SELECT count(*) FROM chunks WHERE document_id = $1", doc.id) == 2
        # ... and a good one replaces them all (smaller chunks now: more of them).
        ctx.settings = vector_settings.model_copy(update={"chunk_chars": 100})
        again = await embed_document(ctx, client, doc.id)
        numbers = [r["chunk_no"] for r in await ctx.store.pool.fetch(
            "SELECT chunk_no FROM chunks WHERE document_id = $1 ORDER BY chunk_no", doc.id)]  # fmt: skip
        assert again.data["chunks"] == len(numbers) > 2 and numbers == list(range(len(numbers)))
        assert (await get_artifact(ctx.store, doc.id, "embeddings")).data["chunks"] == len(numbers)

    run(vector_settings, scenario)


def test_a_429_with_retry_after_is_honoured(vector_settings: Settings, chat_server: ChatServer) -> None:
    chat_server.embedding_modes.append("429")

    async def scenario(ctx: Context, client: LlmClient) -> None:
        doc = await add_text_document(ctx.store, "rate.pdf", ("Rate limits are honoured by waiting.",))
        artifact = await embed_document(ctx, client, doc.id)
        assert artifact.data["chunks"] == 1

    run(vector_settings, scenario)
    times = chat_server.embedding_times
    assert len(times) == 2  # refused once, then answered
    assert times[1] - times[0] >= 0.95  # the server said Retry-After: 1


def test_filters_by_status_and_tag(vector_settings: Settings, chat_server: ChatServer) -> None:
    from pipeline.artifacts import save_artifact
    from pipeline.jobs import DocumentStatus

    async def scenario(ctx: Context, client: LlmClient) -> None:
        bees = await add_text_document(ctx.store, "bees.pdf", TOPICS[5].pages)
        hive = await add_text_document(ctx.store, "hive.pdf", TOPICS[5].pages, status=DocumentStatus.PARTIAL_ERROR)
        for doc in (bees, hive):
            await embed_document(ctx, client, doc.id)
        await save_artifact(ctx.store, hive.id, "metadata", {"metadata": {"tags": ["Insects", "farming"]}}, tokens=0)
        embed = embedder(client, vector_settings)
        both = await search(ctx.store, "honeybees", embed=embed)
        assert {h.filename for h in both.hits} == {"bees.pdf", "hive.pdf"}
        done = await search(ctx.store, "honeybees", embed=embed, statuses=["completed"])
        assert [h.filename for h in done.hits] == ["bees.pdf"]
        tagged = await search(ctx.store, "honeybees", embed=embed, tag="insects")
        assert [h.filename for h in tagged.hits] == ["hive.pdf"]
        for bad, kwargs in (("", {}), ("x", {"limit": 0}), ("x", {"statuses": ["done"]}), ("x", {"tag": ""})):
            with pytest.raises(SearchQueryError):
                await search(ctx.store, bad, embed=embed, **kwargs)

    run(vector_settings, scenario)


def test_retention_purge_leaves_no_chunks(vector_settings: Settings, chat_server: ChatServer) -> None:
    async def scenario(ctx: Context, client: LlmClient) -> None:
        doc = await add_text_document(ctx.store, TOPICS[1].filename, TOPICS[1].pages)
        keep = await add_text_document(ctx.store, TOPICS[2].filename, TOPICS[2].pages)
        for d in (doc, keep):
            await embed_document(ctx, client, d.id)
        await ctx.store.pool.execute(
            "UPDATE documents SET finished_at = now() - interval '40 days' WHERE id = $1", doc.id
        )
        purged = await purge_expired(
            ctx.store, ctx.storage, older_than=timedelta(days=30), batch_size=10, max_batches=1
        )
        assert purged.documents == (doc.id,)
        left = await ctx.store.pool.fetch("SELECT DISTINCT document_id FROM chunks")
        assert [r["document_id"] for r in left] == [keep.id]
        found = await search(ctx.store, "photosynthesis chlorophyll", embed=embedder(client, vector_settings))
        assert doc.id not in [h.document_id for h in found.hits]

    run(vector_settings, scenario)
