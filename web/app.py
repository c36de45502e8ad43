"""The Starlette app: ``create_app(settings)`` wires routes, errors, API keys and the lifespan.

Run it with ``uvicorn --factory web.app:create_app``. The lifespan opens one pipeline Context
(PostgreSQL pool + storage) and one Redis client per process and builds the Dramatiq broker the
producer side needs; the web process only sends messages, it never runs an actor.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.middleware import Middleware

from actors.broker import setup_broker
from actors.producer import Producer
from pipeline.context import Context
from pipeline.errors import PagemillError
from pipeline.logs import setup_logging
from pipeline.settings import Settings
from web import (
    actions,
    artifacts,
    dashboard,
    documents,
    health,
    metrics,
    openapi,
    results,
    search,
    sse,
    thumbnails,
    uploads,
)
from web._state import AppState
from web.auth import ApiKeyMiddleware
from web.errors import EXCEPTION_HANDLERS
from web.metrics import Metrics

ROUTES = [
    *uploads.routes,
    *documents.routes,
    *search.routes,
    *results.routes,
    *thumbnails.routes,
    *artifacts.routes,
    *sse.routes,
    *actions.routes,
    *health.routes,
    *metrics.routes,
    *openapi.routes,
    *dashboard.routes,
]


@contextlib.asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    if not settings.redis_url:
        raise PagemillError("REDIS_URL is not set: the web app needs the Redis that workers read from")
    # The process's broker: the worker's when web runs beside workers (tests, embedded mode).
    producer = Producer(setup_broker(settings))
    ctx = await Context.open(settings)
    redis = Redis.from_url(settings.redis_url)
    app.state.pagemill = AppState(
        settings=settings, ctx=ctx, redis=redis, metrics=app.state.metrics, producer=producer
    )
    try:
        yield
    finally:
        await search.close_client(app)
        await redis.aclose()
        await ctx.aclose()


def create_app(settings: Settings | None = None) -> Starlette:
    """Build the app; settings (and logging) come from the environment unless settings are given."""
    if settings is None:
        # The uvicorn factory path is this process's edge, so it configures logging; callers
        # that pass settings (tests, `pagemill serve`, embedding) own their logging.
        settings = Settings()
        setup_logging(level=settings.log_level, fmt=settings.log_format)
    app = Starlette(
        routes=list(ROUTES),
        middleware=[Middleware(ApiKeyMiddleware, keys=settings.api_keys)],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=_lifespan,
    )
    app.state.settings = settings
    app.state.metrics = Metrics()
    return app
