"""HTTP errors: every failure becomes ``{"error": {"code", "message"}}`` with the right status.

Pipeline errors already carry ``http_status`` and ``code`` (see ``pipeline.errors``); the few
that only the web layer raises are added here:

    PagemillError
    ├── BadRequestError            a form field, query parameter or multipart body is wrong (400)
    ├── UnauthorizedError          no API key sent                                         (401)
    ├── ForbiddenError             an API key that is not configured                       (403)
    ├── UnsupportedMediaTypeError  the request body is not multipart/form-data             (415)
    └── ConflictError
        └── NotReadyError          results asked for before the document has them          (409)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import structlog
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match

from pipeline.errors import ConflictError, PagemillError, TransientError

log = structlog.get_logger(__name__)

# Seconds a client should wait before retrying after a 503.
RETRY_AFTER_S = 5
# Codes for Starlette's own HTTPExceptions (unknown route, wrong method).
# A number parsed from a request: a whole number or a float.
N = TypeVar("N", int, float)
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 400: "bad_request"}


class BadRequestError(PagemillError, http_status=400, code="bad_request"):
    """A form field, query parameter or the multipart body is not what the API accepts."""


class UnauthorizedError(PagemillError, http_status=401, code="unauthorized"):
    """The request carries no API key although keys are configured."""


class ForbiddenError(PagemillError, http_status=403, code="forbidden"):
    """The API key sent is not one of the configured keys."""


class UnsupportedMediaTypeError(PagemillError, http_status=415, code="unsupported_media_type"):
    """The upload is not sent as multipart/form-data."""


class NotReadyError(ConflictError, code="not_ready"):
    """Results were asked for before the document has them."""


def bounded(name: str, raw: str, parse: Callable[[str], N], bounds: tuple[N, N], what: str) -> N:
    """A number sent as text, parsed and within ``bounds``; BadRequestError naming ``name`` otherwise.

    NaN is outside any bounds.
    """
    try:
        value = parse(raw)
    except ValueError:
        raise BadRequestError(f"{name}: {raw[:40]!r} is not {what}") from None
    low, high = bounds
    if not low <= value <= high:
        raise BadRequestError(f"{name}: {value} is outside {low}..{high}")
    return value


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The JSON error body every endpoint answers with."""
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


async def pagemill_error_handler(request: Request, exc: Exception) -> Response:
    """Map a PagemillError to its status and code (the one place this translation happens)."""
    assert isinstance(exc, PagemillError)
    headers = {"Retry-After": str(RETRY_AFTER_S)} if isinstance(exc, TransientError) else None
    if exc.http_status >= 500:
        log.warning("http.error", path=request.url.path, code=exc.code, reason=exc.reason)
    return error_response(exc.http_status, exc.code, exc.reason, headers)


async def http_error_handler(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (unknown route, wrong method) in the same JSON shape."""
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if exc.status_code != 404 else f"no endpoint at {request.url.path}"
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # Starlette's Allow names only the first route of the path; GET and POST /api/documents
        # are two routes, so list the methods of every route that serves this path.
        methods = {m for r in request.app.routes if r.matches(request.scope)[0] is Match.PARTIAL
                   for m in getattr(r, "methods", None) or ()}  # fmt: skip
        headers["Allow"] = ", ".join(sorted(methods))
        message = f"{request.method} is not allowed on {request.url.path}; use {headers['Allow']}"
    return error_response(exc.status_code, code, str(message), headers or None)


async def internal_error_handler(request: Request, exc: Exception) -> Response:
    """Anything unexpected: log it with its traceback, answer a generic 500."""
    log.exception("http.unhandled", path=request.url.path, error=repr(exc))
    return error_response(500, "internal_error", "the server failed to handle this request; see its logs")


EXCEPTION_HANDLERS: dict[Any, Any] = {
    PagemillError: pagemill_error_handler,
    HTTPException: http_error_handler,
    Exception: internal_error_handler,
}
