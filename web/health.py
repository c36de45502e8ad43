"""``/healthz`` (the process answers) and ``/readyz`` (Redis, PostgreSQL and storage answer)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pipeline.errors import PagemillError
from web._state import app_state

# Longest one dependency check may take, seconds; a probe must answer quickly.
CHECK_TIMEOUT_S = 3.0


async def healthz(request: Request) -> Response:
    """Liveness: the process is up and serving.
    ---
    summary: Liveness probe
    tags: [operations]
    security: []
    responses:
      "200": {description: "{status: ok}"}
    """
    return JSONResponse({"status": "ok"})


async def _check(check: Callable[[], Awaitable[object]]) -> dict[str, str]:
    try:
        await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
    except TimeoutError:
        return {"status": "error", "error": f"no answer within {CHECK_TIMEOUT_S} s"}
    except PagemillError as exc:
        return {"status": "error", "error": exc.reason}
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready", with its reason
        return {"status": "error", "error": f"{exc.__class__.__name__}: {exc}"}
    return {"status": "ok"}


async def readyz(request: Request) -> Response:
    """Readiness: Redis, PostgreSQL and storage each answer; 503 naming the one that does not.
    ---
    summary: Readiness probe
    tags: [operations]
    security: []
    responses:
      "200": {description: "{status: ok, checks: {redis, postgresql, storage}}"}
      "503": {description: "{status: error, checks: {...: {status: error, error}}}"}
    """
    state = app_state(request)
    names = ("redis", "postgresql", "storage")
    results = await asyncio.gather(
        _check(state.redis.ping), _check(state.ctx.store.check), _check(state.ctx.storage.check)
    )
    checks = dict(zip(names, results, strict=True))
    ok = all(r["status"] == "ok" for r in results)
    return JSONResponse({"status": "ok" if ok else "error", "checks": checks}, status_code=200 if ok else 503)


routes = [
    Route("/healthz", healthz, methods=["GET"], name="healthz"),
    Route("/readyz", readyz, methods=["GET"], name="readyz"),
]
