"""``GET /api/search``: documents by meaning and by exact words (pipeline.search.query).

The query is embedded with the same OpenAI-compatible client the workers use (one per app,
made on first use); without pgvector a hybrid or vector search answers 501 with the reason
naming the extension, while ``mode=text`` (full-text search alone) still works.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pipeline.llm.client import LlmClient
from pipeline.search.query import MAX_LIMIT, SearchMode, search
from web._state import app_state
from web.documents import _int_param
from web.errors import BadRequestError

DEFAULT_LIMIT = 10
# Query parameters the endpoint reads; any other is refused (a misspelt filter would be ignored).
PARAMS = ("q", "limit", "status", "tag", "mode")


def _client(request: Request) -> LlmClient:
    """The app's embedding client (LlmConfigError, a 503, when no key is configured)."""
    client: LlmClient | None = getattr(request.app.state, "search_client", None)
    if client is None:
        settings = app_state(request).settings
        client = LlmClient.from_settings(settings, base_url=settings.embedding_base_url or settings.openai_base_url)
        request.app.state.search_client = client
    return client


async def close_client(app: Starlette) -> None:
    """Close the embedding client if a search made one (lifespan shutdown)."""
    client: LlmClient | None = getattr(app.state, "search_client", None)
    if client is not None:
        app.state.search_client = None
        await client.aclose()


async def search_documents(request: Request) -> Response:
    """Find documents by meaning and exact words; best first, each with its best chunks.
    ---
    summary: Search documents (hybrid vector + full-text)
    tags: [documents]
    parameters:
      - {name: q, in: query, required: true, schema: {type: string, minLength: 1, maxLength: 500}}
      - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 50, default: 10}}
      - name: status
        in: query
        description: "document statuses, comma-separated"
        schema: {type: string}
      - {name: tag, in: query, description: "a tag of the metadata or summary product", schema: {type: string, maxLength: 64}}
      - {name: mode, in: query, schema: {type: string, enum: [hybrid, vector, text], default: hybrid}}
    responses:
      "200": {description: "{query, mode, results: [{document_id, filename, status, score, page, snippet, matches}]}"}
      "400": {description: "a missing or bad parameter, named"}
      "501": {description: "hybrid or vector search on a PostgreSQL without pgvector (mode=text works)"}
      "503": {description: "no embedding model configured (OPENAI_API_KEY), or it is unavailable"}
    """
    params = request.query_params
    unknown = sorted(set(params.keys()) - set(PARAMS))
    if unknown:
        raise BadRequestError(f"unknown query parameter {unknown[0][:40]!r}; this endpoint takes {', '.join(PARAMS)}")
    for name in ("q", "limit", "tag", "mode"):
        if len(params.getlist(name)) > 1:
            raise BadRequestError(f"query parameter {name!r} was sent {len(params.getlist(name))} times; send it once")
    if "q" not in params:
        raise BadRequestError("q: missing; send the search text, e.g. /api/search?q=invoice+from+acme")
    raw_mode = params.get("mode", SearchMode.HYBRID.value)
    try:
        mode = SearchMode(raw_mode)
    except ValueError:
        raise BadRequestError(
            f"mode: {raw_mode[:40]!r} is not one of {', '.join(m.value for m in SearchMode)}"
        ) from None
    statuses = [s.strip() for value in params.getlist("status") for s in value.split(",") if s.strip()]
    tag = params.get("tag")
    state = app_state(request)

    async def embed(text: str) -> list[float]:
        settings = state.settings
        answer = await _client(request).embed(
            [text], model=settings.embedding_model, dimensions=settings.embedding_dimensions or None
        )
        return answer.vectors[0]

    results = await search(
        state.ctx.store,
        params["q"],
        embed=embed,
        mode=mode,
        limit=_int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT),
        statuses=statuses,
        tag=tag.strip() if tag is not None else None,
        ef_search=state.settings.search_ef_search,
        min_similarity=state.settings.search_min_similarity,
    )
    return JSONResponse(results.to_json())


routes = [Route("/api/search", search_documents, methods=["GET"], name="search")]
