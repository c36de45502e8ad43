"""``GET /api/documents/{id}/pages/{page_no}/thumbnail.png``: a page's small PNG preview.

Workers write the thumbnail when they OCR the page (``pipeline.thumbnails``), before the page
is marked done, so it exists for every ``done`` page and for none that has not been rendered.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pipeline.errors import NotFoundError
from pipeline.jobs import PageStatus
from pipeline.thumbnails import thumbnail_key
from web._state import app_state
from web.documents import document_id

# A page number as the path carries it: 1-based, no sign, no leading zero, at most six digits.
_PAGE_NO = re.compile(r"^[1-9][0-9]{0,5}$")
# Browsers may keep a thumbnail this long, seconds; a reprocessed page renders the same source.
CACHE_MAX_AGE_S = 300


def _page_no(request: Request) -> int:
    raw = request.path_params["page_no"]
    if not _PAGE_NO.match(raw):
        raise NotFoundError(f"{raw[:20]!r} is not a page number; pages are numbered from 1")
    return int(raw)


async def get_thumbnail(request: Request) -> Response:
    """A PNG preview of one page, its longest side 200 px.
    ---
    summary: Page thumbnail
    tags: [results]
    parameters:
      - {name: document_id, in: path, required: true, schema: {type: string, format: uuid}}
      - {name: page_no, in: path, required: true, schema: {type: integer, minimum: 1}}
    responses:
      "200": {description: "image/png", content: {image/png: {}}}
      "404": {description: "unknown or malformed id, no such page, or the page is not rendered yet"}
    """
    state = app_state(request)
    doc = await state.ctx.store.get_document(document_id(request))
    page_no = _page_no(request)
    if page_no > (doc.page_count or 0):
        pages = f"has {doc.page_count} pages" if doc.page_count else "has not been split into pages yet"
        raise NotFoundError(f"document {doc.id} {pages}; there is no page {page_no}")
    try:
        data = await state.ctx.storage.get_bytes(thumbnail_key(doc.id, page_no))
    except NotFoundError:
        pages = await state.ctx.store.reads.page_states(doc.id)
        status = next((p.status for p in pages if p.page_no == page_no), PageStatus.PENDING)
        raise NotFoundError(
            f"page {page_no} of document {doc.id} has no thumbnail: it is {status.value}, and a thumbnail "
            "is made when the page is rendered for OCR"
        ) from None
    return Response(
        data, media_type="image/png", headers={"Cache-Control": f"private, max-age={CACHE_MAX_AGE_S}"}
    )


routes = [
    Route(
        "/api/documents/{document_id}/pages/{page_no}/thumbnail.png",
        get_thumbnail,
        methods=["GET"],
        name="get_thumbnail",
    )
]
