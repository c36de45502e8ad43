"""``GET /api/documents/{id}/events``: Server-Sent Events, one per finished page and one at the end.

The stream polls the job store (a one-row read every POLL_INTERVAL_S; pages are read only when
the document's counters move), so it needs nothing beyond PostgreSQL and works with any number
of web processes. A client that connects late first gets an event for every page already
finished, then the rest as they happen; the stream closes after the ``end`` event.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from pipeline.jobs import DocumentTick
from web._state import AppState, app_state, links
from web.documents import document_id

# How often the stream looks at the job store, seconds.
POLL_INTERVAL_S = 0.25
# A comment line is sent after this much silence, seconds, so proxies keep the connection open.
KEEPALIVE_S = 15.0
# How long a client waits before reconnecting after the stream drops, milliseconds.
RETRY_MS = 2000


def _event(name: str, data: dict[str, Any], event_id: str | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {name}\ndata: {json.dumps(data)}\n\n"


async def _events(state: AppState, doc_id: uuid.UUID) -> AsyncIterator[str]:
    reads = state.ctx.store.reads
    seen: set[int] = set()
    last: DocumentTick | None = None
    last_sent = time.monotonic()
    yield f"retry: {RETRY_MS}\n\n"
    while True:
        tick = await reads.document_tick(doc_id)
        if tick is None:
            # Deleted mid-stream (retention purge): the headers are sent, so say it as an event.
            yield _event(
                "end", {"document_id": str(doc_id), "status": "deleted", "error": "the document was deleted"}
            )
            return
        # Pages are read after the document, so a final document's pages are all visible here.
        if last is None or (tick.pages_finished, tick.status) != (last.pages_finished, last.status):
            for page in await reads.page_states(doc_id, final_only=True):
                if page.page_no in seen:
                    continue
                seen.add(page.page_no)
                data = {
                    "document_id": str(doc_id),
                    "page_no": page.page_no,
                    "status": page.status.value,
                    "error": page.error,
                    "source": page.source,
                    "pages_finished": len(seen),
                    "page_count": tick.page_count,
                }
                yield _event("page", data, str(page.page_no))
                last_sent = time.monotonic()
        last = tick
        if tick.status.is_final:
            data = {
                "document_id": str(doc_id),
                "status": tick.status.value,
                "error": tick.error,
                "page_count": tick.page_count,
                "pages_finished": tick.pages_finished,
                "links": links(doc_id),
            }
            yield _event("end", data)
            return
        if time.monotonic() - last_sent >= KEEPALIVE_S:
            yield ": keepalive\n\n"
            last_sent = time.monotonic()
        await asyncio.sleep(POLL_INTERVAL_S)


async def events(request: Request) -> Response:
    """Follow a document: an SSE ``page`` event per finished page, then one ``end`` event.
    ---
    summary: Document events (Server-Sent Events)
    tags: [documents]
    parameters: [{name: document_id, in: path, required: true, schema: {type: string, format: uuid}}]
    responses:
      "200":
        description: "text/event-stream; events `page` {page_no, status, error, pages_finished,
          page_count} and `end` {status, error, links}"
        content: {text/event-stream: {}}
      "404": {description: "unknown or malformed id"}
    """
    state = app_state(request)
    doc = await state.ctx.store.get_document(document_id(request))  # 404 before the stream opens
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # nginx would buffer events
    return StreamingResponse(_events(state, doc.id), media_type="text/event-stream", headers=headers)


routes = [Route("/api/documents/{document_id}/events", events, methods=["GET"], name="events")]
