"""Artifacts of a document's post-processing steps (pipeline.postprocess.STEPS) as JSON; flashcards as .apkg."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pipeline.artifacts import get_artifact, list_artifacts
from pipeline.errors import NotFoundError
from pipeline.llm.anki import document_apkg
from pipeline.postprocess import STEPS
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
      - {name: kind, in: path, required: true, schema: {type: string, enum: [summary, flashcards, quiz, diagnostics, metadata, embeddings]}}
    responses:
      "200": {description: "the artifact JSON", content: {application/json: {}}}
      "404": {description: "unknown document, unknown kind, or not generated yet"}
    """
    kind = request.path_params["kind"]
    if kind not in STEPS:
        raise NotFoundError(f"no artifact kind {kind[:40]!r}; choose from {', '.join(STEPS)}")
    store = app_state(request).ctx.store
    doc = await store.get_document(document_id(request))
    artifact = await get_artifact(store, doc.id, kind)
    return JSONResponse(artifact.data | {"tokens": artifact.tokens, "created_at": artifact.created_at.isoformat()})


async def list_document_artifacts(request: Request) -> Response:
    """The artifacts a document has so far, with the tokens each took and the document's total.
    ---
    summary: Document artifacts and token use
    tags: [results]
    parameters:
      - {name: document_id, in: path, required: true, schema: {type: string, format: uuid}}
    responses:
      "200": {description: "{items: [{kind, model, pages, usage, tokens, created_at, link}], tokens, usage}"}
      "404": {description: "unknown or malformed id"}
    """
    store = app_state(request).ctx.store
    doc = await store.get_document(document_id(request))
    items = []
    totals = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "calls": 0}
    for artifact in await list_artifacts(store, doc.id):
        usage = artifact.data.get("usage") or {}
        for key in totals:
            totals[key] += int(usage.get(key, 0))
        items.append(
            {
                "kind": artifact.kind,
                "model": artifact.data.get("model"),
                "pages": artifact.data.get("pages"),
                "usage": usage,
                "tokens": artifact.tokens,
                "created_at": artifact.created_at.isoformat(),
                "link": f"/api/documents/{doc.id}/artifacts/{artifact.kind}",
            }
        )
    return JSONResponse(
        {"document_id": str(doc.id), "items": items, "tokens": sum(a["tokens"] for a in items), "usage": totals}
    )


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
    Route("/api/documents/{document_id}/artifacts", list_document_artifacts, methods=["GET"], name="list_artifacts"),
    Route(
        "/api/documents/{document_id}/flashcards.apkg", get_flashcards_apkg, methods=["GET"], name="get_flashcards_apkg"
    ),
    Route(
        "/api/documents/{document_id}/artifacts/{kind}", get_artifact_json, methods=["GET"], name="get_artifact"
    ),
]
