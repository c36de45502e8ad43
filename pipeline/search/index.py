"""The ``embeddings`` step: a document's chunks and their vectors, replaced in one transaction.

Chunks are embedded in batches of ``PAGEMILL_EMBEDDING_BATCH`` through the LLM client (same
slots, retries and ``Retry-After`` handling as the chat calls); the tokens the server reports
are stored on an ``embeddings`` artifact, so they count with the document's other LLM tokens and
the reaper sees the step as done. Without pgvector the chunks are still stored, text only, so
full-text search finds the document, and the step then fails with the reason naming the
extension.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

import structlog

from pipeline.artifacts import Artifact, save_artifact
from pipeline.context import Context
from pipeline.errors import ConflictError
from pipeline.jobs import JobStore, PageStatus
from pipeline.llm.chunking import PageText
from pipeline.llm.client import LlmClient, Usage
from pipeline.llm.errors import LlmAnswerError
from pipeline.llm.steps import READY_STATES
from pipeline.search.chunking import TextChunk, cut_pages
from pipeline.search.vectors import VectorSupport, VectorUnavailableError, ensure_index, vector_support

log = structlog.get_logger(__name__)

KIND = "embeddings"


async def replace_chunks(
    store: JobStore,
    document_id: uuid.UUID,
    chunks: Sequence[TextChunk],
    *,
    vectors: Sequence[Sequence[float]] | None = None,
    support: VectorSupport | None = None,
) -> None:
    """Replace every chunk of a document (with its vectors when given) in one transaction."""
    rows = [(document_id, c.chunk_no, c.page_no, c.char_start, c.char_end, c.text) for c in chunks]
    async with store.pool.acquire() as conn, conn.transaction():
        await conn.execute("DELETE FROM chunks WHERE document_id = $1", document_id)
        if vectors is None or support is None:
            await conn.executemany(
                "INSERT INTO chunks (document_id, chunk_no, page_no, char_start, char_end, text) "
                "VALUES ($1, $2, $3, $4, $5, $6)",
                rows,
            )
            return
        # real[] travels in asyncpg's binary format; pgvector casts it to a vector server-side.
        await conn.executemany(
            "INSERT INTO chunks (document_id, chunk_no, page_no, char_start, char_end, text, dims, embedding) "
            f"VALUES ($1, $2, $3, $4, $5, $6, $7, $8::real[]::{support.vector()})",
            [(*row, len(vec), list(vec)) for row, vec in zip(rows, vectors, strict=True)],
        )


async def embed_texts(
    client: LlmClient, texts: Sequence[str], *, model: str, dimensions: int | None, batch: int
) -> tuple[list[list[float]], Usage]:
    """Vectors of ``texts`` in order, ``batch`` per request (the client bounds concurrency)."""
    batches = [texts[i : i + batch] for i in range(0, len(texts), batch)]
    answers = await asyncio.gather(*(client.embed(b, model=model, dimensions=dimensions) for b in batches))
    sizes = {len(a.vectors[0]) for a in answers}
    if len(sizes) > 1:
        raise LlmAnswerError(f"embedding model {model} answered vectors of different sizes {sorted(sizes)}")
    return [v for a in answers for v in a.vectors], sum((a.usage for a in answers), Usage())


async def embed_document(ctx: Context, client: LlmClient, document_id: uuid.UUID) -> Artifact:
    """Cut the document's OCR text into chunks, embed them, and store both (replacing earlier ones)."""
    settings = ctx.settings
    doc = await ctx.store.get_document(document_id)
    if doc.status not in READY_STATES:
        raise ConflictError(
            f"document {doc.id} is {doc.status.value}; embeddings need its OCR text (completed first)",
            document_id=str(doc.id),
        )
    pages = [
        PageText(p.page_no, p.text or "")
        for p in await ctx.store.list_pages(doc.id)
        if p.status is PageStatus.DONE
    ]
    chunks = cut_pages(pages, max_chars=settings.chunk_chars)
    try:
        support = await vector_support(ctx.store)
    except VectorUnavailableError as exc:
        await replace_chunks(ctx.store, doc.id, chunks)
        log.warning("embeddings.text_only", document_id=str(doc.id), chunks=len(chunks), reason=exc.reason)
        raise
    model = settings.embedding_model
    vectors: list[list[float]] = []
    usage = Usage()
    if chunks:
        vectors, usage = await embed_texts(
            client, [c.text for c in chunks], model=model,
            dimensions=settings.embedding_dimensions or None, batch=settings.embedding_batch,
        )  # fmt: skip
        await ensure_index(ctx.store, support, len(vectors[0]))
    await replace_chunks(ctx.store, doc.id, chunks, vectors=vectors, support=support)
    data = {
        "kind": KIND,
        "document_id": str(doc.id),
        "model": model,
        "dims": len(vectors[0]) if vectors else None,
        "chunks": len(chunks),
        "pages": sorted({c.page_no for c in chunks}),
        "usage": usage.as_dict(),
    }
    artifact = await save_artifact(ctx.store, doc.id, KIND, data, tokens=usage.total_tokens)
    log.info("embeddings.saved", document_id=str(doc.id), chunks=len(chunks), **usage.as_dict())
    return artifact
