"""The steps of one document's life, each callable on its own (actors and tests call these).

    ingest_upload / register_source  -> a ``documents`` row (queued) and the source in storage
    prepare_document                 -> page count, one ``pages`` row per page, the text source of
                                        each (pipeline.textlayer): pages to OCR, pages to read
    record_text_pages                -> born-digital pages read from their text layer, no OCR
    process_page                     -> render + OCR (or text layer) + barrier; aggregate or not
    record_page_failure              -> a page that cannot succeed, through the same barrier
    finish_document                  -> result.txt / result.json in storage, final status
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from pipeline import pdf, textlayer
from pipeline.aggregate import DocumentResult, aggregate_document, page_to_json
from pipeline.context import Context
from pipeline.errors import (
    BadInputError,
    EngineUnavailableError,
    LimitExceededError,
    NotFoundError,
    UnsupportedTypeError,
)
from pipeline.jobs import Document, DocumentStatus, DonePage, PageOutcome, PageStatus, parse_id
from pipeline.ocr import PageResult, get_engine, recognize_page
from pipeline.outputs.formats import OUTPUTS, parse_outputs
from pipeline.pdf_output import build_layer, layer_key, store_searchable_pdf
from pipeline.postprocess import parse_steps
from pipeline.settings import Settings
from pipeline.storage import adopt, fetch_cached, prune_now_and_then
from pipeline.textlayer import OcrMode, PageLayer, Plan, TextSource
from pipeline.thumbnails import thumbnail_key, thumbnail_png

log = structlog.get_logger(__name__)

# Messages carry ids as strings; callers parse them here (malformed ids are NotFoundError).
parse_document_id = parse_id
# Document ids for producers that send only a storage_key: derived from the message id (the
# Celery task id), so a redelivered message finds the row it made the first time.
DOCUMENT_ID_NAMESPACE = uuid.UUID("6f1c3f64-5b7e-4d0a-9a53-4c1d2c8e7b10")

# Bytes of the file head read to sniff its type: PDF readers accept junk before `%PDF-` within
# the first 1024 bytes, and so does pipeline.pdf.sniff_type.
SNIFF_BYTES = 1024
# The engine name recorded for a document whose every page was read from its text layer.
TEXT_LAYER_ENGINE = "text_layer"
# Thumbnails of text-layer pages stored at once (S3 PUTs or local file writes in flight).
THUMBNAIL_WRITES = 16
# Documents still able to take page work.
ACTIVE_STATES = (DocumentStatus.QUEUED, DocumentStatus.EXTRACTING, DocumentStatus.PROCESSING_CHUNKS)


def document_id_for_message(message_id: str) -> uuid.UUID:
    """The id of the document a storage_key message makes: the same for every delivery of it."""
    return uuid.uuid5(DOCUMENT_ID_NAMESPACE, message_id)


def source_key(document_id: uuid.UUID, kind: str) -> str:
    """Where a document's source lives in storage."""
    return f"documents/{document_id}/source.{kind}"


def result_key(document_id: uuid.UUID, suffix: str) -> str:
    """Where a document's results live in storage (``txt``, ``json``, or an output's suffix)."""
    return f"documents/{document_id}/result.{suffix}"


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
    kind = pdf.sniff_type(head)
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
        kind = pdf.sniff_type(head)
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


async def _local_source(ctx: Context, doc: Document) -> Path:
    if doc.sha256 is None or doc.kind is None:
        raise UnsupportedTypeError(f"document {doc.id} has no recorded type or hash", document_id=str(doc.id))
    settings = ctx.settings
    path = await fetch_cached(ctx.storage, doc.source_key, doc.sha256, settings.cache_dir, f".{doc.kind}")
    await asyncio.to_thread(
        prune_now_and_then, settings.cache_dir,
        max_bytes=settings.cache_max_bytes, max_age_s=settings.cache_max_age_hours * 3600,
    )  # fmt: skip
    return path


def _dpi(ctx: Context, doc: Document) -> int:
    return doc.dpi or ctx.settings.pdf_dpi


@dataclass(frozen=True, slots=True)
class Split:
    """What ``prepare_document`` found: pages to send to OCR and pages whose text layer is read."""

    to_ocr: list[int]
    text_pages: list[PageLayer] = field(default_factory=list)
    plans: dict[int, Plan] = field(default_factory=dict)


def ocr_mode(ctx: Context, doc: Document) -> OcrMode:
    """The document's ``ocr_mode`` (upload field / Celery kwarg), else PAGEMILL_OCR_MODE."""
    value = doc.options.get("ocr_mode") or ctx.settings.ocr_mode
    try:
        return OcrMode(str(value).strip().lower())
    except ValueError:
        raise BadInputError(
            f"ocr_mode must be one of {', '.join(m.value for m in OcrMode)}, got {str(value)[:40]!r}",
            document_id=str(doc.id),
        ) from None


async def prepare_document(ctx: Context, document_id: uuid.UUID, *, require_pdf: bool = False) -> Split:
    """Count pages, decide each page's text source, create page rows.

    Returns the pending pages to OCR (send their messages) and the pending pages whose text layer
    is read instead (``record_text_pages``); both empty when the document is cancelled or already
    past this step. Bad input raises a BadInputError after the document has been marked
    ``error`` with the reason. The engine is loaded only when some page needs OCR.
    """
    doc = await ctx.store.get_document(document_id)
    if doc.status not in ACTIVE_STATES:
        log.info("document.prepare_skipped", document_id=str(doc.id), status=doc.status.value)
        return Split([])
    await ctx.store.set_status(doc.id, DocumentStatus.EXTRACTING, expect=[DocumentStatus.QUEUED])
    settings = ctx.settings
    try:
        if require_pdf and doc.kind != pdf.DocumentKind.PDF:
            raise UnsupportedTypeError(
                f"tasks.ocr_pdf_document needs a PDF, but the file is {doc.kind}; send it to tasks.ocr_document",
                document_id=str(doc.id),
            )
        mode = ocr_mode(ctx, doc)
        requested_outputs(ctx.settings, doc)  # an unknown output fails the document now, not at the end
        path = await _local_source(ctx, doc)
        info = await asyncio.to_thread(
            pdf.inspect_document,
            path,
            max_pages=settings.max_pages,
            max_page_pixels=settings.max_page_pixels,
            dpi=_dpi(ctx, doc),
        )
        layers: dict[int, PageLayer] = {}
        if info.kind is pdf.DocumentKind.PDF and mode is not OcrMode.FORCE:
            found = await asyncio.to_thread(
                textlayer.analyze_pdf, path, dpi=_dpi(ctx, doc), thumbnails=True, words=_needs_words(ctx, doc)
            )
            layers = {layer.page_no: layer for layer in found}
    except (BadInputError, NotFoundError) as exc:
        # NotFoundError here: the source file was deleted from storage after upload.
        await ctx.store.set_status(doc.id, DocumentStatus.ERROR, expect=ACTIVE_STATES, error=exc.reason)
        log.warning("document.rejected", document_id=str(doc.id), reason=exc.reason)
        raise
    plans = {n: textlayer.plan_page(layers.get(n), mode) for n in range(1, info.page_count + 1)}
    needs_ocr = any(plan.source is TextSource.OCR for plan in plans.values())
    engine = TEXT_LAYER_ENGINE
    if needs_ocr:
        try:
            loaded = await asyncio.to_thread(get_engine, settings, settings.merge_languages(doc.lang_hints))
        except EngineUnavailableError as exc:  # e.g. a language the engine cannot read: not worth retrying
            await ctx.store.set_status(doc.id, DocumentStatus.ERROR, expect=ACTIVE_STATES, error=exc.reason)
            log.warning("document.rejected", document_id=str(doc.id), reason=exc.reason)
            raise
        engine = loaded.name
    pending = await ctx.store.start_pages(doc.id, kind=info.kind.value, page_count=info.page_count, engine=engine)
    split = Split(
        to_ocr=[n for n in pending if plans[n].source is TextSource.OCR],
        text_pages=[layers[n] for n in pending if plans[n].source is TextSource.TEXT_LAYER],
        plans=plans,
    )
    log.info(
        "document.split",
        document_id=str(doc.id),
        page_count=info.page_count,
        ocr_mode=mode.value,
        to_ocr=len(split.to_ocr),
        text_layer=len(split.text_pages),
        layers=dict(collections.Counter(layer.kind.value for layer in layers.values())),
    )
    return split


async def record_text_pages(ctx: Context, document_id: uuid.UUID, split: Split) -> bool:
    """Record the split's text-layer pages through the barrier; True when that closed it.

    One transaction for all of them (``JobStore.finish_pages_done``): a 300-page born-digital
    PDF costs one commit, not 300. Thumbnails are stored first, so a page seen ``done`` has one.
    """
    if not split.text_pages:
        return False

    def results() -> list[DonePage]:  # reading order is CPU work: off the event loop
        done = []
        for layer in split.text_pages:
            started = time.perf_counter()
            result = textlayer.layer_result(layer)
            body = page_to_json(result) | split.plans[layer.page_no].as_json(layer.kind)
            ms = layer.stats.get("ms", 0.0) + (time.perf_counter() - started) * 1000
            done.append(DonePage(layer.page_no, result.text, result.mean_confidence, body, round(ms)))
        return done

    pages = await asyncio.to_thread(results)
    limit = asyncio.Semaphore(THUMBNAIL_WRITES)

    async def store(layer: PageLayer) -> None:
        async with limit:
            await ctx.storage.put_bytes(thumbnail_key(document_id, layer.page_no), layer.thumbnail or b"")

    await asyncio.gather(*(store(layer) for layer in split.text_pages if layer.thumbnail))
    outcome = await ctx.store.finish_pages_done(document_id, pages)
    log.info(
        "pages.done",
        document_id=str(document_id),
        source=TextSource.TEXT_LAYER.value,
        pages=len(pages),
        counted=outcome.counted,
        characters=sum(len(p.text) for p in pages),
        pages_finished=outcome.pages_finished,
        page_count=outcome.page_count,
    )
    return outcome.closed


async def _record_page(
    ctx: Context,
    document_id: uuid.UUID,
    page_no: int,
    result: PageResult,
    plan: Plan,
    layer: PageLayer | None,
    *,
    thumbnail: bytes | None,
    started: float,
) -> PageOutcome:
    """Store a page's thumbnail, then its result through the barrier."""
    # Stored before the page is marked done, so a reader that sees `done` finds the thumbnail;
    # a redelivered message writes the same key again.
    if thumbnail is not None:
        await ctx.storage.put_bytes(thumbnail_key(document_id, page_no), thumbnail)
    duration_ms = int((time.perf_counter() - started) * 1000)
    outcome = await ctx.store.finish_page(
        document_id,
        page_no,
        PageStatus.DONE,
        text=result.text,
        confidence=result.mean_confidence,
        result=page_to_json(result) | plan.as_json(None if layer is None else layer.kind),
        duration_ms=duration_ms,
    )
    log.info(
        "page.done",
        document_id=str(document_id),
        page_no=page_no,
        source=plan.source.value,
        lines=len(result.lines),
        rotation=result.rotation,
        duration_ms=duration_ms,
        pages_finished=outcome.pages_finished,
        page_count=outcome.page_count,
    )
    return outcome


async def process_page(ctx: Context, document_id: uuid.UUID, page_no: int) -> PageOutcome | None:
    """Read one page (its text layer, or OCR) and record it; None when the page was already final.

    A duplicate that finds the document ``aggregating`` returns an outcome with ``closed`` set:
    the worker that closed the barrier may have died before sending aggregation, and its page
    message is this redelivery, so aggregation is sent again (it runs once, see finish_document).
    """
    doc = await ctx.store.get_document(document_id)
    if doc.status is DocumentStatus.CANCELLED:
        outcome = await ctx.store.finish_page(doc.id, page_no, PageStatus.SKIPPED, error="document was cancelled")
        log.info("page.skipped", document_id=str(doc.id), page_no=page_no, reason="cancelled")
        return outcome if outcome.counted else None
    if not await ctx.store.claim_page(doc.id, page_no):
        log.info("page.duplicate", document_id=str(doc.id), page_no=page_no, document_status=doc.status.value)
        if doc.status is DocumentStatus.AGGREGATING:
            return PageOutcome(False, doc.pages_finished, doc.page_count or 0, closed=True)
        return None
    settings = ctx.settings
    started = time.perf_counter()
    path = await _local_source(ctx, doc)
    mode = ocr_mode(ctx, doc)
    dpi = _dpi(ctx, doc)
    layer: PageLayer | None = None
    if doc.kind == pdf.DocumentKind.PDF and mode is not OcrMode.FORCE:
        # Cheap (milliseconds): the same decision the split made, and the real text ``redo`` keeps.
        found = await asyncio.to_thread(
            textlayer.analyze_pdf, path, dpi=dpi, page_numbers=[page_no], thumbnails=True, words=_needs_words(ctx, doc)
        )
        layer = found[0]
    plan = textlayer.plan_page(layer, mode)
    if plan.source is TextSource.TEXT_LAYER and layer is not None:  # e.g. re-sent by the reaper
        return await _record_page(
            ctx, doc.id, page_no, textlayer.layer_result(layer), plan, layer, thumbnail=layer.thumbnail, started=started
        )
    engine = await asyncio.to_thread(get_engine, settings, settings.merge_languages(doc.lang_hints))
    min_conf = doc.min_confidence if doc.min_confidence is not None else settings.min_confidence

    wants_layer = any(OUTPUTS[name].layers for name in requested_outputs(settings, doc))

    def run() -> tuple[PageResult, bytes, bytes | None]:
        image = pdf.render_page(path, page_no, dpi=dpi, max_page_pixels=settings.max_page_pixels)
        # Before OCR, which may turn the image it is given.
        thumbnail = layer.thumbnail if layer is not None and layer.thumbnail else thumbnail_png(image)
        result = recognize_page(engine, image, min_confidence=min_conf)
        ocr_only = result
        if plan.keep_text and layer is not None:
            # The searchable PDF keeps the page's real text: its layer has only what OCR added.
            ocr_only = textlayer.ocr_outside_real_text(result, layer)
            result = textlayer.merge_real_text(result, layer)
        text_layer = None
        if wants_layer:
            size = (image.shape[1], image.shape[0])
            text_layer = build_layer(page_to_json(ocr_only), size, document_id=doc.id, page_no=page_no)
        return result, thumbnail, text_layer

    result, thumbnail, text_layer = await asyncio.to_thread(run)
    if text_layer is not None:
        # Stored before the page is marked done, so aggregation finds every done page's layer.
        await ctx.storage.put_bytes(layer_key(doc.id, page_no), text_layer)
    return await _record_page(ctx, doc.id, page_no, result, plan, layer, thumbnail=thumbnail, started=started)


async def ocr_standalone_page(
    ctx: Context,
    storage_key: str,
    page_no: int,
    *,
    lang_hints: Sequence[str] = (),
    min_confidence: float | None = None,
    dpi: int | None = None,
) -> dict[str, Any]:
    """OCR one page of a stored file without a document record (Celery's stand-alone page call)."""
    settings = ctx.settings
    tmp = settings.cache_dir / f"page-{uuid.uuid4()}.tmp"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    try:
        await ctx.storage.get_to_file(storage_key, tmp)
        engine = await asyncio.to_thread(get_engine, settings, settings.merge_languages(lang_hints))
        min_conf = settings.min_confidence if min_confidence is None else min_confidence

        def run() -> Any:
            pdf.inspect_document(tmp, max_pages=settings.max_pages, max_page_pixels=settings.max_page_pixels,
                                 dpi=dpi or settings.pdf_dpi)
            image = pdf.render_page(tmp, page_no, dpi=dpi or settings.pdf_dpi, max_page_pixels=settings.max_page_pixels)
            return recognize_page(engine, image, min_confidence=min_conf)

        result = await asyncio.to_thread(run)
    finally:
        tmp.unlink(missing_ok=True)
    return {"storage_key": storage_key, "page_no": page_no, "engine": engine.name, "text": result.text,
            **page_to_json(result)}


async def fail_document(ctx: Context, document_id: uuid.UUID, reason: str) -> bool:
    """Mark a document that never got split ``error`` with ``reason``; False if it had moved on."""
    try:
        changed = await ctx.store.set_status(document_id, DocumentStatus.ERROR, expect=ACTIVE_STATES[:2], error=reason)
    except NotFoundError:
        return False  # a storage_key message that failed before its row existed
    log.warning("document.failed", document_id=str(document_id), reason=reason, changed=changed)
    return changed


async def fail_aggregation(ctx: Context, document_id: uuid.UUID, reason: str) -> bool:
    """Mark an ``aggregating`` document whose results could not be written ``error``; False if it had moved on."""
    changed = await ctx.store.set_status(
        document_id, DocumentStatus.ERROR, expect=[DocumentStatus.AGGREGATING], error=reason
    )
    log.warning("document.failed", document_id=str(document_id), reason=reason, changed=changed)
    return changed


async def record_page_failure(ctx: Context, document_id: uuid.UUID, page_no: int, reason: str) -> PageOutcome:
    """Mark a page failed with ``reason`` through the barrier."""
    outcome = await ctx.store.finish_page(document_id, page_no, PageStatus.FAILED, error=reason)
    log.warning("page.failed", document_id=str(document_id), page_no=page_no, reason=reason)
    return outcome


def requested_outputs(settings: Settings, doc: Document) -> tuple[str, ...]:
    """The outputs besides text and JSON the document asked for (``outputs``), else PAGEMILL_OUTPUTS."""
    value = doc.options.get("outputs") or settings.outputs
    try:
        return parse_outputs(value if isinstance(value, (str, list)) else str(value))
    except ValueError as exc:
        raise BadInputError(f"outputs: {exc}", document_id=str(doc.id)) from None


def _needs_words(ctx: Context, doc: Document) -> bool:
    """Whether the outputs asked for place words (hOCR, ALTO): text layers then keep word boxes."""
    return any(OUTPUTS[name].words for name in requested_outputs(ctx.settings, doc))


def with_default_steps(settings: Settings, options: dict[str, Any] | None) -> dict[str, Any] | None:
    """``options`` with PAGEMILL_POSTPROCESS as its steps when it names none (an explicit list, even empty, stays)."""
    if not settings.postprocess or (options and "postprocess" in options):
        return options
    return {**(options or {}), "postprocess": list(parse_steps(settings.postprocess))}


def postprocess_steps(doc: Document) -> list[str]:
    """The LLM steps the upload asked for (``postprocess``), in the order given."""
    steps = doc.options.get("postprocess") or []
    return [str(s) for s in steps] if isinstance(steps, list) else []


async def finish_postprocessing(ctx: Context, document_id: uuid.UUID, status: DocumentStatus) -> bool:
    """Close post-processing with the status aggregation gave (``completed`` or ``partial_error``)."""
    return await ctx.store.set_status(document_id, status, expect=[DocumentStatus.POSTPROCESSING])


async def finish_document(ctx: Context, document_id: uuid.UUID) -> DocumentResult | None:
    """Aggregate an ``aggregating`` document, store its results, set its final status.

    When the upload asked for post-processing (and not every page failed) the document goes to
    ``postprocessing`` instead; ``result.status`` is then the status its last LLM step sets.
    Returns None when the document is not aggregating (a duplicate message, or cancelled).
    """
    doc = await ctx.store.get_document(document_id)
    if doc.status is not DocumentStatus.AGGREGATING:
        log.info("document.aggregate_skipped", document_id=str(doc.id), status=doc.status.value)
        return None
    pages = await ctx.store.list_pages(doc.id)
    result = aggregate_document(doc, pages)
    json_key = result_key(doc.id, "json")
    for name in requested_outputs(ctx.settings, doc):
        output = OUTPUTS[name]
        key = result_key(doc.id, output.suffix)
        if output.write is None:  # the searchable PDF: what it holds goes into result.json
            report = await store_searchable_pdf(ctx, doc, pages, await _local_source(ctx, doc), key)
            result.data.setdefault("outputs", {})[name] = report.as_json()
            continue
        body = await asyncio.to_thread(output.write, result.data)
        await ctx.storage.put_bytes(key, body.encode("utf-8"))
    await ctx.storage.put_bytes(result_key(doc.id, "txt"), result.text.encode("utf-8"))
    await ctx.storage.put_bytes(json_key, json.dumps(result.data, ensure_ascii=False).encode("utf-8"))
    status = result.status
    if postprocess_steps(doc) and status is not DocumentStatus.ERROR:
        # Straight on to the LLM steps: the last one sets the final status (result.status), so
        # no reader ever sees the document final before its artifacts exist.
        status = DocumentStatus.POSTPROCESSING
    if not await ctx.store.finish_document(doc.id, status, result_key=json_key, error=result.error):
        # A second aggregation message ran alongside and finished it first (same results).
        log.info("document.aggregate_skipped", document_id=str(doc.id), status="finished by another aggregation")
        return None
    log.info(
        "document.finished",
        document_id=str(doc.id),
        status=status.value,
        page_count=len(pages),
        failed_pages=len(result.data["failed_pages"]),
    )
    return result
