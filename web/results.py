"""A finished document's text and JSON, streamed from storage."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from pipeline import documents
from pipeline.errors import NotFoundError
from pipeline.jobs import Document
from pipeline.outputs.formats import OUTPUTS, Output
from web._state import app_state
from web.documents import document_id, outputs_of
from web.errors import NotReadyError


async def _ready(request: Request) -> Document:
    doc = await app_state(request).ctx.store.get_document(document_id(request))
    if doc.result_key is None:
        if doc.status.is_final:
            detail = f": {doc.error}" if doc.error else ""
            raise NotReadyError(f"document {doc.id} ended {doc.status.value} without a result{detail}")
        raise NotReadyError(
            f"document {doc.id} is {doc.status.value}; its result is ready once it is completed "
            f"(follow /api/documents/{doc.id}/events)"
        )
    return doc


async def _stream(request: Request, key: str, media_type: str) -> Response:
    chunks = app_state(request).ctx.storage.iter_chunks(key)
    # Pull the first chunk before answering: a missing object must be a 404, not a broken 200.
    first = await anext(chunks, b"")

    async def body(rest: AsyncGenerator[bytes, None]) -> AsyncIterator[bytes]:
        try:
            yield first
            async for chunk in rest:
                yield chunk
        finally:
            await rest.aclose()

    return StreamingResponse(body(chunks), media_type=media_type)


async def get_text(request: Request) -> Response:
    """The document text as UTF-8 plain text, pages separated by form feeds.
    ---
    summary: Document text
    tags: [results]
    parameters: [{name: document_id, in: path, required: true, schema: {type: string, format: uuid}}]
    responses:
      "200": {description: "text/plain", content: {text/plain: {}}}
      "404": {description: "unknown or malformed id"}
      "409": {description: "not finished yet, or finished without a result"}
    """
    doc = await _ready(request)
    return await _stream(request, documents.result_key(doc.id, "txt"), "text/plain; charset=utf-8")


async def get_result_json(request: Request) -> Response:
    """The full result: per-page lines, boxes, confidences, failed pages and timings.
    ---
    summary: Document result JSON
    tags: [results]
    parameters: [{name: document_id, in: path, required: true, schema: {type: string, format: uuid}}]
    responses:
      "200": {description: "result.json", content: {application/json: {}}}
      "404": {description: "unknown or malformed id"}
      "409": {description: "not finished yet, or finished without a result"}
    """
    doc = await _ready(request)
    assert doc.result_key is not None
    return await _stream(request, doc.result_key, "application/json")


def _output_endpoint(output: Output) -> Callable[[Request], Awaitable[Response]]:
    async def get_output(request: Request) -> Response:
        state = app_state(request)
        doc = await state.ctx.store.get_document(document_id(request))
        if output.name not in outputs_of(state.settings, doc):
            raise NotFoundError(
                f"document {doc.id} was not asked for {output.name}: upload with outputs={output.name} "
                f"(or set PAGEMILL_OUTPUTS), or reprocess it with that option"
            )
        doc = await _ready(request)
        return await _stream(request, documents.result_key(doc.id, output.suffix), output.media_type)

    get_output.__name__ = f"get_result_{output.name}"
    get_output.__doc__ = f"""The document as {output.name} (``result.{output.suffix}``), when the upload asked for it.
    ---
    summary: Document result as {output.name}
    tags: [results]
    parameters: [{{name: document_id, in: path, required: true, schema: {{type: string, format: uuid}}}}]
    responses:
      "200": {{description: "{output.media_type.split(';')[0]}", content: {{{output.media_type.split(';')[0]}: {{}}}}}}
      "404": {{description: "unknown or malformed id, or the upload did not ask for {output.name} (outputs=)"}}
      "409": {{description: "not finished yet, or finished without a result"}}
    """
    return get_output


routes = [
    Route("/api/documents/{document_id}/text", get_text, methods=["GET"], name="get_text"),
    Route(
        "/api/documents/{document_id}/result.json", get_result_json, methods=["GET"], name="get_result_json"
    ),
    *(
        Route(
            f"/api/documents/{{document_id}}/result.{output.suffix}",
            _output_endpoint(output),
            methods=["GET"],
            name=f"get_result_{output.name}",
        )
        for output in OUTPUTS.values()
    ),
]
