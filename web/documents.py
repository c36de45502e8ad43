"""Reading documents back: list, metadata (with the result when done), status and progress.

``/status`` and ``/progress`` keep the shapes of the Celery service pagemill replaces (seed 001),
so its clients keep working: page states are shown with that service's chunk vocabulary.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pipeline import documents
from pipeline.errors import BadInputError
from pipeline.jobs import Document, DocumentStatus, PageStatus, parse_id
from pipeline.settings import Settings
from web._state import app_state, links
from web.errors import BadRequestError, bounded

# Page size of GET /api/documents: default and largest.
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
# States whose work is over and whose percentage is therefore 100.
_DONE_STATES = (DocumentStatus.COMPLETED, DocumentStatus.PARTIAL_ERROR, DocumentStatus.ERROR)
# Document states as the Celery task states seed clients read from ``/status``'s ``task``.
TASK_STATES = {
    DocumentStatus.PENDING: "PENDING",
    DocumentStatus.QUEUED: "PENDING",
    DocumentStatus.COMPLETED: "SUCCESS",
    DocumentStatus.PARTIAL_ERROR: "SUCCESS",
    DocumentStatus.ERROR: "FAILURE",
    DocumentStatus.CANCELLED: "REVOKED",
}
# Page states as the seed's chunk states.
CHUNK_STATES = {
    PageStatus.PENDING: "pending",
    PageStatus.RUNNING: "processing",
    PageStatus.DONE: "completed",
    PageStatus.FAILED: "failed",
    PageStatus.SKIPPED: "skipped",
}


def progress_percentage(doc: Document) -> float:
    """Share of pages finished, 0-100 (100 once the document is done)."""
    if doc.status in _DONE_STATES:
        return 100.0
    if not doc.page_count:
        return 0.0
    return round(100.0 * doc.pages_finished / doc.page_count, 1)


def outputs_of(settings: Settings, doc: Document) -> tuple[str, ...]:
    """The outputs the document asked for; none when its value is bad (the document then fails)."""
    try:
        return documents.requested_outputs(settings, doc)
    except BadInputError:
        return ()


def document_json(doc: Document, settings: Settings) -> dict[str, Any]:
    """The public view of a document row."""
    return {
        "id": str(doc.id),
        "document_id": str(doc.id),
        "status": doc.status.value,
        "filename": doc.filename,
        "kind": doc.kind,
        "size_bytes": doc.size_bytes,
        "sha256": doc.sha256,
        "page_count": doc.page_count,
        "pages_finished": doc.pages_finished,
        "progress_percentage": progress_percentage(doc),
        "lang_hints": list(doc.lang_hints),
        "dpi": doc.dpi,
        "min_confidence": doc.min_confidence,
        "engine": doc.engine,
        "options": doc.options,
        "error_message": doc.error,
        "created_at": doc.created_at.isoformat(),
        "updated_at": doc.updated_at.isoformat(),
        "finished_at": doc.finished_at.isoformat() if doc.finished_at else None,
        "links": links(doc.id, outputs_of(settings, doc)),
    }


def document_id(request: Request) -> uuid.UUID:
    """The ``{document_id}`` path parameter; a malformed id is a 404, like an unknown one."""
    return parse_id(request.path_params["document_id"])


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    return default if raw is None else bounded(name, raw, int, (low, high), "a whole number")


async def list_documents(request: Request) -> Response:
    """List documents, newest first, optionally in one status.
    ---
    summary: List documents
    tags: [documents]
    parameters:
      - name: status
        in: query
        description: "one document status"
        schema:
          type: string
          enum: [pending, queued, extracting, processing_chunks, aggregating, postprocessing, completed,
                 partial_error, error, cancelled]
      - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 200, default: 50}}
      - {name: offset, in: query, schema: {type: integer, minimum: 0, maximum: 2147483647, default: 0}}
    responses:
      "200": {description: "{items, total, limit, offset, next_offset}"}
      "400": {description: "unknown status or bad paging value"}
    """
    state = app_state(request)
    raw_status = request.query_params.get("status")
    try:
        status = DocumentStatus(raw_status) if raw_status is not None else None
    except ValueError:
        known = ", ".join(s.value for s in DocumentStatus)
        raise BadRequestError(f"status: {raw_status[:40]!r} is not one of {known}") from None  # type: ignore[index]
    limit = _int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    offset = _int_param(request, "offset", 0, 0, 2**31 - 1)
    docs = await state.ctx.store.list_documents(status=status, limit=limit, offset=offset)
    total = await state.ctx.store.reads.count_documents(status)
    more = offset + len(docs) < total
    return JSONResponse(
        {
            "items": [document_json(d, state.settings) for d in docs],
            "total": total,
            "limit": limit,
            "offset": offset,
            "next_offset": offset + len(docs) if more else None,
        }
    )


async def get_document(request: Request) -> Response:
    """A document's metadata, page counts and, once it is done, its result.
    ---
    summary: Get a document
    tags: [documents]
    parameters: [{name: document_id, in: path, required: true, schema: {type: string, format: uuid}}]
    responses:
      "200": {description: "metadata, page_counts, result (null until done)"}
      "404": {description: "unknown or malformed id"}
    """
    state = app_state(request)
    doc = await state.ctx.store.get_document(document_id(request))
    counts = await state.ctx.store.page_counts(doc.id)
    body = document_json(doc, state.settings)
    body["page_counts"] = {status.value: n for status, n in counts.items()}
    body["result"] = None
    if doc.status.is_final and doc.result_key:
        body["result"] = json.loads(await state.ctx.storage.get_bytes(doc.result_key))
    return JSONResponse(body)


async def get_status(request: Request) -> Response:
    """A document's status and progress (seed 001 shape).
    ---
    summary: Document status
    tags: [documents]
    parameters: [{name: document_id, in: path, required: true, schema: {type: string, format: uuid}}]
    responses:
      "200": {description: "{document_id, status, progress_percentage, error_message, updated_at}"}
      "404": {description: "unknown or malformed id"}
    """
    doc = await app_state(request).ctx.store.get_document(document_id(request))
    return JSONResponse(
        {
            "document_id": str(doc.id),
            "status": doc.status.value,
            "progress_percentage": progress_percentage(doc),
            "page_count": doc.page_count,
            "pages_finished": doc.pages_finished,
            # Seed clients read task.state; there is no Celery task, so it is derived from the status.
            "task": {
                "task_id": None,
                "state": TASK_STATES.get(doc.status, "STARTED"),
                "info": {"pages_finished": doc.pages_finished, "page_count": doc.page_count},
            },
            "error_message": doc.error,
            "updated_at": doc.updated_at.isoformat(),
        }
    )


async def get_progress(request: Request) -> Response:
    """Totals and per-page states (seed 001 shape: ``real_time_progress``, ``chunk_details``).
    ---
    summary: Document progress per page
    tags: [documents]
    parameters: [{name: document_id, in: path, required: true, schema: {type: string, format: uuid}}]
    responses:
      "200": {description: "{status, progress_percentage, metadata, real_time_progress, chunk_details}; each
        chunk (page) says its status, error, and source: text_layer (read from the PDF) or ocr, with why"}
      "404": {description: "unknown or malformed id"}
    """
    state = app_state(request)
    doc = await state.ctx.store.get_document(document_id(request))
    pages = await state.ctx.store.reads.page_states(doc.id)
    tally = {s: 0 for s in PageStatus}
    for page in pages:
        tally[page.status] += 1
    percentage = progress_percentage(doc)
    return JSONResponse(
        {
            "document_id": str(doc.id),
            "status": doc.status.value,
            "progress_percentage": percentage,
            "metadata": {
                "filename": doc.filename,
                "kind": doc.kind,
                "size_bytes": doc.size_bytes,
                "page_count": doc.page_count,
                "engine": doc.engine,
                "lang_hints": list(doc.lang_hints),
                "created_at": doc.created_at.isoformat(),
                "updated_at": doc.updated_at.isoformat(),
            },
            "real_time_progress": {
                "total_chunks": doc.page_count or len(pages),
                "completed_chunks": tally[PageStatus.DONE],
                "failed_chunks": tally[PageStatus.FAILED],
                "processing_chunks": tally[PageStatus.RUNNING],
                "pending_chunks": tally[PageStatus.PENDING],
                "skipped_chunks": tally[PageStatus.SKIPPED],
                "overall_progress": percentage,
            },
            "chunk_details": {
                str(p.page_no): {
                    "status": CHUNK_STATES[p.status],
                    "error": p.error,
                    "source": p.source,
                    "source_reason": p.source_reason,
                }
                for p in pages
            },
            "error_message": doc.error,
        }
    )


routes = [
    Route("/api/documents", list_documents, methods=["GET"], name="list_documents"),
    Route("/api/documents/{document_id}", get_document, methods=["GET"], name="get_document"),
    Route("/api/documents/{document_id}/status", get_status, methods=["GET"], name="get_status"),
    Route("/api/documents/{document_id}/progress", get_progress, methods=["GET"], name="get_progress"),
]
