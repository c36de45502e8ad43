"""API keys: ``Authorization: Bearer <key>`` on every request once PAGEMILL_API_KEYS is set.

A pure ASGI middleware (not ``BaseHTTPMiddleware``) so uploads and event streams pass through
untouched. Probes stay open: an orchestrator's liveness/readiness checks carry no secret.
"""

from __future__ import annotations

import hmac

from pydantic import SecretStr
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from web.errors import ForbiddenError, UnauthorizedError, error_response

# Paths served without a key. The dashboard page and its assets hold no data (web/dashboard.py).
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/"})
OPEN_PREFIXES = ("/static/",)


def _is_open(path: str) -> bool:
    # A static path with ".." is refused by StaticFiles anyway; it is not waved through here either.
    return path in OPEN_PATHS or (path.startswith(OPEN_PREFIXES) and ".." not in path)


class ApiKeyMiddleware:
    """Refuse requests without a configured API key: 401 when none is sent, 403 when it is wrong."""

    def __init__(self, app: ASGIApp, *, keys: tuple[SecretStr, ...]) -> None:
        self.app = app
        self._keys = [k.get_secret_value().encode() for k in keys]

    def _matches(self, candidate: bytes) -> bool:
        # Compare against every key without stopping early, each in constant time.
        found = False
        for key in self._keys:
            found |= hmac.compare_digest(candidate, key)
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._keys or _is_open(scope["path"]):
            await self.app(scope, receive, send)
            return
        header = Headers(scope=scope).get("authorization", "")
        scheme, _, token = header.partition(" ")
        error: UnauthorizedError | ForbiddenError | None = None
        if scheme.lower() != "bearer" or not token.strip():
            error = UnauthorizedError("this server needs an API key: send Authorization: Bearer <key>")
        elif not self._matches(token.strip().encode()):
            error = ForbiddenError("the API key is not valid here; check PAGEMILL_API_KEYS on the server")
        if error is None:
            await self.app(scope, receive, send)
            return
        headers = {"WWW-Authenticate": 'Bearer realm="pagemill"'} if error.http_status == 401 else None
        response = error_response(error.http_status, error.code, error.reason, headers)
        await response(scope, receive, send)
