"""The Starlette app: ``create_app(settings)`` wires routes, errors, API keys and the lifespan.

Run it with ``uvicorn --factory web.app:create_app``. The lifespan opens one pipeline Context
(PostgreSQL pool + storage) and one Redis client per process and builds the Dramatiq broker the
producer side needs; the web process only sends messages, it never runs an actor.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

from dramatiq.brokers.redis import RedisBroker
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.middleware import Middleware

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
from web._state import AppState, Enqueue
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


def _setup_broker(settings: Settings) -> RedisBroker:
    """The process's broker; an existing one is reused when it serves the same Redis namespace."""
    from actors import broker as broker_module

    try:
        return broker_module.setup_broker(settings)
    except RuntimeError:
        # Embedded mode and tests build the broker first with their own settings; the web app
        # only needs it to point at the same Redis keys.
        current = broker_module.current_settings()
        same = (current.redis_url, current.redis_namespace, current.ocr_queue)
        if same != (settings.redis_url, settings.redis_namespace, settings.ocr_queue):
            raise PagemillError(
                "this process already has a Dramatiq broker for another Redis or namespace; "
                "create the app with the settings the broker was built from"
            ) from None
        return broker_module.setup_broker()


def _enqueuer(settings: Settings) -> Enqueue:
    _setup_broker(settings)
    # Actor modules bind to the broker at import, so they are imported only after it exists.
    from actors.ocr import ocr_document

    async def enqueue(document_id: uuid.UUID) -> str:
        # dramatiq's send is blocking Redis I/O: keep it off the event loop.
        message = await asyncio.to_thread(ocr_document.send, document_id=str(document_id))
        return str(message.message_id)

    return enqueue


@contextlib.asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    if not settings.redis_url:
        raise PagemillError("REDIS_URL is not set: the web app needs the Redis that workers read from")
    enqueue = _enqueuer(settings)
    ctx = await Context.open(settings)
    redis = Redis.from_url(settings.redis_url)
    app.state.pagemill = AppState(
        settings=settings, ctx=ctx, redis=redis, metrics=app.state.metrics, enqueue=enqueue
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
