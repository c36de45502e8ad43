"""``GET /openapi.json``: OpenAPI 3 built from the routes themselves.

Each endpoint's docstring carries its OpenAPI fragment after ``---`` (Starlette's
SchemaGenerator), so the document lists exactly the routes the app serves.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.schemas import SchemaGenerator

OPENAPI_VERSION = "3.0.3"
API_VERSION = "1"

_generator = SchemaGenerator(
    {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "pagemill",
            "version": API_VERSION,
            "description": "Document OCR: upload, follow progress, read text and JSON results. Errors are "
            '{"error": {"code", "message"}}.',
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
)


def build_schema(routes: list[Any]) -> dict[str, Any]:
    """The OpenAPI document for ``routes``."""
    return _generator.get_schema(routes=routes)


async def openapi(request: Request) -> Response:
    """This API's OpenAPI 3 document.
    ---
    summary: OpenAPI document
    tags: [operations]
    responses:
      "200": {description: "OpenAPI 3 JSON", content: {application/json: {}}}
    """
    schema = getattr(request.app.state, "openapi_schema", None)
    if schema is None:
        schema = build_schema(request.app.routes)
        request.app.state.openapi_schema = schema
    return JSONResponse(schema)


routes = [Route("/openapi.json", openapi, methods=["GET"], name="openapi")]
