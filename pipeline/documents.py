"""The steps of one document's life, each callable on its own (actors and tests call these).

    ingest_upload / register_source  -> a ``documents`` row (queued) and the source in storage
                                        (pipeline.intake, re-exported here)
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
import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from pipeline import pdf, textlayer
from pipeline.aggregate import DocumentResult, aggregate_document, page_to_json
from pipeline.context import Context
from pipeline.errors import BadInputError, EngineUnavailableError, NotFoundError, UnsupportedTypeError

# Re-exported: the document flow starts with intake (upload or a producer's stored file).
from pipeline.intake import (  # noqa: F401
    DOCUMENT_ID_NAMESPACE,
    document_id_for_message,
    ingest_upload,
    register_source,
    source_key,
)
from pipeline.jobs import Document, DocumentStatus, DonePage, PageOutcome, PageStatus, parse_id
from pipeline.ocr import PageResult, get_engine, recognize_page
from pipeline.outputs.formats import OUTPUTS, requested_outputs
from pipeline.pdf_output import build_layer, layer_key, store_searchable_pdf
from pipeline.sniff import DocumentKind
from pipeline.storage import fetch_cached, prune, prune_due
from pipeline.textlayer import OcrMode, PageLayer, Plan, TextSource
from pipeline.thumbnails import thumbnail_key, thumbnail_png

log = structlog.get_logger(__name__)

# Messages carry ids as strings; callers parse them here (malformed ids are NotFoundError).
parse_document_id = parse_id
# The engine name recorded for a document whose every page was read from its text layer.
TEXT_LAYER_ENGINE = "text_layer"
# Thumbnails of text-layer pages stored at once (S3 PUTs or local file writes in flight).
THUMBNAIL_WRITES = 16
# Documents still able to take page work.
ACTIVE_STATES = (DocumentStatus.QUEUED, DocumentStatus.EXTRACTING, DocumentStatus.PROCESSING_CHUNKS)


def result_key(document_id: uuid.UUID, suffix: str) -> str:
    """Where a document's results live in storage (``txt``, ``json``, or an output's suffix)."""
    return f"documents/{document_id}/result.{suffix}"


async def _local_source(ctx: Context, doc: Document) -> Path:
    if doc.sha256 is None or doc.kind is None:
        raise UnsupportedTypeError(f"document {doc.id} has no recorded type or hash", document_id=str(doc.id))
    settings = ctx.settings
    path = await fetch_cached(ctx.storage, doc.source_key, doc.sha256, settings.cache_dir, f".{doc.kind}")
    if prune_due(settings.cache_dir):  # a clock read per page; the directory scan every 10 min
        await asyncio.to_thread(
            prune, settings.cache_dir, max_bytes=settings.cache_max_bytes, max_age_s=settings.cache_max_age_hours * 3600
        )
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
        if require_pdf and doc.kind != DocumentKind.PDF:
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
        if info.kind is DocumentKind.PDF and mode is not OcrMode.FORCE:
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
    if doc.kind == DocumentKind.PDF and mode is not OcrMode.FORCE:
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


def _needs_words(ctx: Context, doc: Document) -> bool:
    """Whether the outputs asked for place words (hOCR, ALTO): text layers then keep word boxes."""
    return any(OUTPUTS[name].words for name in requested_outputs(ctx.settings, doc))


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
