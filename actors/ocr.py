"""OCR actors: ``tasks.ocr_document``, ``tasks.ocr_pdf_document``, ``tasks.ocr_page`` and aggregation.

Each actor decodes its message, calls one ``pipeline.documents`` step and sends what comes
next. Retries, backoff and time limits are actor options; bad input is never retried.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import dramatiq
import structlog
from dramatiq.middleware import CurrentMessage

from actors import runtime
from actors.broker import DEFAULT, OCR
from actors.celery_results import document_failed, document_finished, document_revoked
from actors.notify import notify_if_final
from actors.postprocess import start_pipeline
from pipeline import documents, standalone
from pipeline.errors import (
    BadInputError,
    PagemillError,
    PermanentError,
)
from pipeline.jobs import DocumentStatus

log = structlog.get_logger(__name__)

# Errors that retrying cannot fix: every PagemillError that is not retryable (pipeline.errors).
PERMANENT = PermanentError


def _message_id() -> str:
    message = CurrentMessage.get_current_message()
    return message.message_id if message is not None else str(uuid.uuid4())


async def _start(
    document_id: str | None,
    storage_key: str | None,
    *,
    require_pdf: bool,
    lang_hints: list[str] | None,
    min_confidence: float | None,
    dpi: int | None,
    options: dict[str, Any],
) -> None:
    ctx = await runtime.context()
    if document_id is not None:
        doc_id = documents.parse_document_id(document_id)
    elif storage_key is not None:
        doc_id = documents.document_id_for_message(_message_id())
        await documents.register_source(
            ctx, storage_key, document_id=doc_id, lang_hints=lang_hints or (),
            min_confidence=min_confidence, dpi=dpi, options=options,
        )  # fmt: skip
        structlog.contextvars.bind_contextvars(document_id=str(doc_id))
    else:
        raise BadInputError("tasks.ocr_document needs document_id or storage_key")
    try:
        split = await documents.prepare_document(ctx, doc_id, require_pdf=require_pdf)
    except PagemillError as exc:
        if not exc.retryable:  # rejected (prepare_document marked bad input): the document ends here
            await documents.fail_document(ctx, doc_id, exc.reason)
            await notify_if_final(str(doc_id))
        raise
    if split.to_ocr:  # scans first, so other workers start on them while this one reads text layers
        group = dramatiq.group(ocr_page.message(document_id=str(doc_id), page_no=n) for n in split.to_ocr)
        await asyncio.to_thread(group.run)
    if await documents.record_text_pages(ctx, doc_id, split):
        await asyncio.to_thread(aggregate_document.send, document_id=str(doc_id))


def _document_actor(name: str, *, require_pdf: bool, doc: str) -> Any:
    """``tasks.ocr_document`` and ``tasks.ocr_pdf_document``: one split step, two task names."""

    async def split(
        document_id: str | None = None,
        storage_key: str | None = None,
        lang_hints: list[str] | None = None,
        min_confidence: float | None = None,
        dpi: int | None = None,
        **options: Any,
    ) -> None:
        await _start(
            document_id, storage_key, require_pdf=require_pdf, lang_hints=lang_hints,
            min_confidence=min_confidence, dpi=dpi, options=options,
        )  # fmt: skip

    split.__name__ = name.removeprefix("tasks.")
    split.__doc__ = doc
    return dramatiq.actor(
        split, actor_name=name, queue_name=OCR, throws=PERMANENT, on_retry_exhausted="tasks.ocr_document_exhausted"
    )


ocr_document = _document_actor(
    "tasks.ocr_document", require_pdf=False, doc="Split a document into pages and fan out one ``tasks.ocr_page`` per page."
)
ocr_pdf_document = _document_actor(
    "tasks.ocr_pdf_document", require_pdf=True, doc="Like ``tasks.ocr_document`` but refuses anything that is not a PDF."
)


@dramatiq.actor(
    actor_name="tasks.ocr_page",
    queue_name=OCR,
    throws=PERMANENT,
    on_retry_exhausted="tasks.ocr_page_exhausted",
)
async def ocr_page(
    document_id: str | None = None,
    page_no: int = 1,
    storage_key: str | None = None,
    lang_hints: list[str] | None = None,
    min_confidence: float | None = None,
    dpi: int | None = None,
    **_: Any,
) -> dict[str, Any] | None:
    """OCR one page of a document; the page that closes the barrier sends aggregation.

    Time limit: PAGEMILL_PAGE_TIME_LIMIT (``actors.broker.placement``).
    """
    page_no = _page_number(page_no)
    ctx = await runtime.context()
    if document_id is None:
        if storage_key is None:
            raise BadInputError("tasks.ocr_page needs document_id or storage_key")
        return await standalone.ocr_standalone_page(
            ctx, storage_key, page_no, lang_hints=lang_hints or (), min_confidence=min_confidence, dpi=dpi
        )
    doc_id = documents.parse_document_id(document_id)
    try:
        outcome = await documents.process_page(ctx, doc_id, page_no)
    except PagemillError as exc:
        if exc.retryable:
            raise
        # Bad page or unusable engine: record it now, retrying cannot help.
        outcome = await documents.record_page_failure(ctx, doc_id, page_no, exc.reason)
    if outcome is not None and outcome.closed:
        await asyncio.to_thread(aggregate_document.send, document_id=str(doc_id))
    return None


@dramatiq.actor(actor_name="tasks.ocr_page_exhausted", queue_name=OCR, throws=PERMANENT)
async def ocr_page_exhausted(message_data: dict[str, Any], retry_info: dict[str, Any]) -> None:
    """A page whose retries ran out: mark it failed with the last error, close the barrier."""
    kwargs = message_data.get("kwargs") or {}
    if kwargs.get("document_id") is None:
        return  # a stand-alone page: nothing to record
    doc_id = documents.parse_document_id(kwargs["document_id"])
    page_no = int(kwargs.get("page_no", 1))
    ctx = await runtime.context()
    outcome = await documents.record_page_failure(ctx, doc_id, page_no, _exhausted_reason(message_data, retry_info))
    if outcome.closed:
        await asyncio.to_thread(aggregate_document.send, document_id=str(doc_id))


def _page_number(value: Any) -> int:
    """``page_no`` from a message (Celery producers may send "3"); BadInputError unless a number >= 1."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and int(value) >= 1:
        return int(value)
    raise BadInputError(f"page_no must be a page number from 1, got {str(value)[:40]!r}")


def _exhausted_reason(message_data: dict[str, Any], retry_info: dict[str, Any]) -> str:
    """The last error of a message whose retries ran out, from the traceback Retries stored."""
    last = runtime.last_error(message_data)
    if last.startswith("pipeline.errors."):  # our errors carry a reason written for users
        last = last.partition(": ")[2] or last
    return f"failed after {retry_info.get('retries', 0) + 1} attempts: {last}"


@dramatiq.actor(actor_name="tasks.ocr_document_exhausted", queue_name=OCR, throws=PERMANENT)
async def ocr_document_exhausted(message_data: dict[str, Any], retry_info: dict[str, Any]) -> None:
    """A document that could not be split after every retry: mark it ``error`` with the reason."""
    kwargs = message_data.get("kwargs") or {}
    if kwargs.get("document_id") is not None:
        doc_id = documents.parse_document_id(kwargs["document_id"])
    else:  # a storage_key message: the id derives from the message id, as in _start
        doc_id = documents.document_id_for_message(message_data["message_id"])
    ctx = await runtime.context()
    await documents.fail_document(ctx, doc_id, _exhausted_reason(message_data, retry_info))
    await notify_if_final(str(doc_id))


@dramatiq.actor(
    actor_name="tasks.aggregate_document",
    queue_name=OCR,
    throws=PERMANENT,
    on_retry_exhausted="tasks.aggregate_document_exhausted",
)
async def aggregate_document(document_id: str) -> None:
    """Write the document's text and JSON; set its final status or start its LLM steps."""
    ctx = await runtime.context()
    doc_id = documents.parse_document_id(document_id)
    result = await documents.finish_document(ctx, doc_id)
    await asyncio.to_thread(document_finished, document_id, result)  # Celery result, if it came via the bridge
    if result is not None:
        doc = await ctx.store.get_document(doc_id)
        if doc.status is DocumentStatus.POSTPROCESSING:
            await start_pipeline(document_id, documents.postprocess_steps(doc), finish_as=result.status)
    await notify_if_final(document_id)  # also after a redelivery, should the first run have died here


@dramatiq.actor(actor_name="tasks.aggregate_document_exhausted", queue_name=OCR, throws=PERMANENT)
async def aggregate_document_exhausted(message_data: dict[str, Any], retry_info: dict[str, Any]) -> None:
    """Results that could not be written after every retry (storage down): ``error`` with the reason.

    Without this the document would wait in ``aggregating`` for the reaper, which re-sends it forever.
    """
    document_id = str((message_data.get("kwargs") or {}).get("document_id"))
    reason = _exhausted_reason(message_data, retry_info)
    ctx = await runtime.context()
    if await documents.fail_aggregation(ctx, documents.parse_document_id(document_id), reason):
        await asyncio.to_thread(document_failed, document_id, reason)  # Celery producers waiting on it
        await notify_if_final(document_id)


@dramatiq.actor(actor_name="tasks.document_cancelled", queue_name=DEFAULT, throws=PERMANENT)
async def document_cancelled(document_id: str) -> None:
    """Tell whoever waits on a cancelled document: Celery producers (REVOKED), its callback URL.

    A cancelled document never aggregates, so this is the only place its waiters hear of it.
    """
    ctx = await runtime.context()
    doc = await ctx.store.get_document(documents.parse_document_id(document_id))
    if doc.status is not DocumentStatus.CANCELLED:
        return  # reprocessed since: its own completion will answer
    reason = doc.error or "cancelled"
    revoked = await asyncio.to_thread(document_revoked, document_id, f"document {document_id} was {reason}")
    log.info("document.cancel_announced", document_id=document_id, celery_results=revoked)
    await notify_if_final(document_id)
