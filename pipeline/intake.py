"""Documents in: an upload streamed into storage, or a file a producer already stored, made a queued row.

Both sniff the type from the file's head, hash the whole file (the source cache and duplicate
checks key on it) and refuse what is too large, before the row exists.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import structlog

from pipeline.context import Context
from pipeline.errors import LimitExceededError
from pipeline.jobs import Document
from pipeline.postprocess import parse_steps
from pipeline.settings import Settings
from pipeline.sniff import sniff_type
from pipeline.storage import adopt

log = structlog.get_logger(__name__)

# Document ids for producers that send only a storage_key: derived from the message id (the
# Celery task id), so a redelivered message finds the row it made the first time.
DOCUMENT_ID_NAMESPACE = uuid.UUID("6f1c3f64-5b7e-4d0a-9a53-4c1d2c8e7b10")

# Bytes of the file head read to sniff its type: PDF readers accept junk before `%PDF-` within
# the first 1024 bytes, and so does pipeline.sniff.sniff_type.
SNIFF_BYTES = 1024


def document_id_for_message(message_id: str) -> uuid.UUID:
    """The id of the document a storage_key message makes: the same for every delivery of it."""
    return uuid.uuid5(DOCUMENT_ID_NAMESPACE, message_id)


def source_key(document_id: uuid.UUID, kind: str) -> str:
    """Where a document's source lives in storage."""
    return f"documents/{document_id}/source.{kind}"


async def ingest_upload(
    ctx: Context,
    chunks: AsyncIterable[bytes],
    *,
    filename: str | None,
    lang_hints: Sequence[str] = (),
    min_confidence: float | None = None,
    dpi: int | None = None,
    options: dict[str, Any] | None = None,
    document_id: uuid.UUID | None = None,
) -> Document:
    """Stream an upload into storage (sniffed, hashed, size-limited) and insert its row."""
    doc_id = document_id or uuid.uuid4()
    limit = ctx.settings.max_upload_bytes
    it = aiter(chunks)
    head = b""
    async for chunk in it:
        head += chunk
        if len(head) >= SNIFF_BYTES:
            break
    kind = sniff_type(head)
    digest = hashlib.sha256()
    size = 0

    async def counted() -> AsyncIterator[bytes]:
        nonlocal size
        for chunk in (head,):
            size += len(chunk)
            digest.update(chunk)
            yield chunk
        async for chunk in it:
            size += len(chunk)
            if size > limit:
                raise LimitExceededError(
                    f"upload is larger than the limit of {limit} bytes (PAGEMILL_MAX_UPLOAD_BYTES)"
                )
            digest.update(chunk)
            yield chunk

    key = source_key(doc_id, kind.value)
    try:
        await ctx.storage.put_stream(key, counted())
    except LimitExceededError:
        await ctx.storage.delete(key)
        raise
    doc = await ctx.store.create_document(
        document_id=doc_id,
        source_key=key,
        filename=filename,
        kind=kind.value,
        sha256=digest.hexdigest(),
        size_bytes=size,
        lang_hints=list(lang_hints),
        min_confidence=min_confidence,
        dpi=dpi,
        options=with_default_steps(ctx.settings, options),
    )
    log.info("document.ingested", document_id=str(doc.id), kind=kind.value, size_bytes=size, filename=filename)
    return doc


async def register_source(
    ctx: Context,
    storage_key: str,
    *,
    document_id: uuid.UUID,
    lang_hints: Sequence[str] = (),
    min_confidence: float | None = None,
    dpi: int | None = None,
    options: dict[str, Any] | None = None,
) -> Document:
    """Create the row for a file a producer already put in storage (Celery ``storage_key`` calls)."""
    tmp = ctx.settings.cache_dir / f"register-{document_id}.tmp"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    try:
        await ctx.storage.get_to_file(storage_key, tmp)
        digest, size, head = await asyncio.to_thread(_hash_file, tmp)
        kind = sniff_type(head)
        # Into the source cache: the split step reads it from there instead of downloading it again.
        await asyncio.to_thread(adopt, tmp, digest, ctx.settings.cache_dir, f".{kind.value}")
    finally:
        tmp.unlink(missing_ok=True)
    return await ctx.store.create_document(
        document_id=document_id,
        source_key=storage_key,
        filename=storage_key.rsplit("/", 1)[-1],
        kind=kind.value,
        sha256=digest,
        size_bytes=size,
        lang_hints=list(lang_hints),
        min_confidence=min_confidence,
        dpi=dpi,
        options=with_default_steps(ctx.settings, options),
    )


def _hash_file(path: Path) -> tuple[str, int, bytes]:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        head = fh.read(SNIFF_BYTES)
        digest.update(head)
        size = len(head)
        while block := fh.read(1 << 20):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size, head


def with_default_steps(settings: Settings, options: dict[str, Any] | None) -> dict[str, Any] | None:
    """``options`` with PAGEMILL_POSTPROCESS as its steps when it names none (an explicit list, even empty, stays)."""
    if not settings.postprocess or (options and "postprocess" in options):
        return options
    return {**(options or {}), "postprocess": list(parse_steps(settings.postprocess))}
