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

from web.auth import OPEN_PATHS

OPENAPI_VERSION = "3.0.3"
API_VERSION = "1"
# The body of every 4xx/5xx answer (web/errors.py).
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}
_ERROR_CONTENT = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}

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
            "schemas": {"Error": ERROR_SCHEMA},
        },
        "security": [{"bearer": []}],
    }
)


def build_schema(routes: list[Any]) -> dict[str, Any]:
    """The OpenAPI document for ``routes``, with the answers every operation can give added."""
    schema = _generator.get_schema(routes=routes)
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if path in OPEN_PATHS:
                operation["security"] = []  # probes carry no key (web/auth.py)
            else:
                responses.setdefault("401", {"description": "no API key sent (PAGEMILL_API_KEYS is set)"})
                responses.setdefault("403", {"description": "the API key is not one of PAGEMILL_API_KEYS"})
            for status, response in responses.items():
                if status.startswith("4"):
                    response.setdefault("content", _ERROR_CONTENT)
    return schema


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
