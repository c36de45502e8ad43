"""LLM artifacts of a document (summary, flashcards, quiz, diagnostics) as JSON; flashcards as .apkg."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pipeline.artifacts import get_artifact
from pipeline.errors import NotFoundError
from pipeline.llm.anki import document_apkg
from pipeline.llm.schemas import PRODUCTS
from web._state import app_state
from web.documents import document_id
from web.errors import NotReadyError


async def get_artifact_json(request: Request) -> Response:
    """One artifact of a document, with the model, pages covered and tokens used.
    ---
    summary: Document artifact
    tags: [results]
    parameters:
      - {name: document_id, in: path, required: true, schema: {type: string, format: uuid}}
      - {name: kind, in: path, required: true, schema: {type: string, enum: [summary, flashcards, quiz, diagnostics]}}
    responses:
      "200": {description: "the artifact JSON", content: {application/json: {}}}
      "404": {description: "unknown document, unknown kind, or not generated yet"}
    """
    kind = request.path_params["kind"]
    if kind not in PRODUCTS:
        raise NotFoundError(f"no artifact kind {kind[:40]!r}; choose from {', '.join(PRODUCTS)}")
    store = app_state(request).ctx.store
    doc = await store.get_document(document_id(request))
    artifact = await get_artifact(store, doc.id, kind)
    return JSONResponse(artifact.data | {"tokens": artifact.tokens, "created_at": artifact.created_at.isoformat()})


async def get_flashcards_apkg(request: Request) -> Response:
    """The document's flashcards as an Anki package (``.apkg``), one note per card.
    ---
    summary: Flashcards as an Anki deck
    tags: [results]
    parameters:
      - {name: document_id, in: path, required: true, schema: {type: string, format: uuid}}
    responses:
      "200": {description: "the .apkg file", content: {application/octet-stream: {}}}
      "404": {description: "unknown document, or it has no flashcards (upload with postprocess=flashcards)"}
      "409": {description: "the document is still being processed"}
    """
    store = app_state(request).ctx.store
    doc = await store.get_document(document_id(request))
    if not doc.status.is_final:
        raise NotReadyError(
            f"document {doc.id} is {doc.status.value}; its flashcards are ready once it is completed "
            f"(follow /api/documents/{doc.id}/events)"
        )
    data = await document_apkg(store, doc)
    name = f"{doc.id}.apkg"
    return Response(
        data,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


routes = [
    Route(
        "/api/documents/{document_id}/flashcards.apkg", get_flashcards_apkg, methods=["GET"], name="get_flashcards_apkg"
    ),
    Route(
        "/api/documents/{document_id}/artifacts/{kind}", get_artifact_json, methods=["GET"], name="get_artifact"
    ),
]
