"""Changing a document's course: cancel it, or reprocess all or only the failed pages."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pipeline.errors import ConflictError
from pipeline.jobs import FINAL_DOCUMENT_STATES, DocumentStatus
from web._state import app_state, links, try_enqueue
from web.documents import document_id
from web.errors import BadRequestError

_ACTIVE_STATES = [s for s in DocumentStatus if s not in FINAL_DOCUMENT_STATES]
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


def _flag(request: Request, name: str) -> bool:
    raw = request.query_params.get(name, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise BadRequestError(f"{name}: {raw[:40]!r} is not true or false")


async def cancel(request: Request) -> Response:
    """Cancel a document; pages not yet started are skipped, running ones finish.
    ---
    summary: Cancel a document
    tags: [actions]
    parameters: [{name: document_id, in: path, required: true, schema: {type: string, format: uuid}}]
    responses:
      "200": {description: "{id, status: cancelled}"}
      "404": {description: "unknown or malformed id"}
      "409": {description: "the document has already finished"}
    """
    state = app_state(request)
    store = state.ctx.store
    doc_id = document_id(request)
    if not await store.set_status(
        doc_id, DocumentStatus.CANCELLED, expect=_ACTIVE_STATES, error="cancelled by request"
    ):
        doc = await store.get_document(doc_id)  # raises 404 when it does not exist
        raise ConflictError(f"document {doc.id} has already finished ({doc.status.value}); nothing to cancel")
    # A cancelled document never aggregates: tell its Celery producers and callback URL now.
    await state.producer.document_cancelled(doc_id)
    return JSONResponse({"id": str(doc_id), "status": DocumentStatus.CANCELLED.value, "links": links(doc_id)})


async def reprocess(request: Request) -> Response:
    """Run a finished document again: every page, or with ``only_failed=true`` the failed ones.
    ---
    summary: Reprocess a document
    tags: [actions]
    parameters:
      - {name: document_id, in: path, required: true, schema: {type: string, format: uuid}}
      - {name: only_failed, in: query, schema: {type: boolean, default: false}}
    responses:
      "202": {description: "{id, status: queued, pages_reset, task_id, links}"}
      "400": {description: "only_failed is not a boolean"}
      "404": {description: "unknown or malformed id"}
      "409": {description: "still running, or no failed pages with only_failed"}
    """
    state = app_state(request)
    doc_id = document_id(request)
    only_failed = _flag(request, "only_failed")
    pages = await state.ctx.store.reset_pages(doc_id, only_failed=only_failed)
    task_id = await try_enqueue(state, doc_id)
    body = {
        "id": str(doc_id),
        "status": DocumentStatus.QUEUED.value,
        "only_failed": only_failed,
        "pages_reset": pages,
        "task_id": task_id,
        "links": links(doc_id),
    }
    return JSONResponse(body, status_code=202)


routes = [
    Route("/api/documents/{document_id}/cancel", cancel, methods=["POST"], name="cancel"),
    Route("/api/documents/{document_id}/reprocess", reprocess, methods=["POST"], name="reprocess"),
]
