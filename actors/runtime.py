"""The pipeline Context of this worker process, made once per event loop and reused."""

from __future__ import annotations

import asyncio
import threading

from dramatiq.asyncio import get_event_loop_thread

from pipeline.context import Context
from pipeline.logs import setup_logging
from pipeline.settings import Settings

_lock = threading.Lock()
_contexts: dict[asyncio.AbstractEventLoop, Context] = {}
_opening: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}
_override: Settings | None = None


def use_settings(settings: Settings | None) -> None:
    """Point pipeline resources at other settings (tests: a schema and storage per test)."""
    global _override
    _override = settings


def settings() -> Settings:
    """The settings pipeline steps run with."""
    from actors.broker import current_settings

    return _override or current_settings()


def configure_logging() -> None:
    """Configure structlog once for a worker process, from settings."""
    s = settings()
    setup_logging(level=s.log_level, fmt=s.log_format)


async def context() -> Context:
    """The Context for the running event loop, opened on first use."""
    loop = asyncio.get_running_loop()
    ctx = _contexts.get(loop)
    if ctx is not None and ctx.settings == settings():
        return ctx
    with _lock:
        opening = _opening.setdefault(loop, asyncio.Lock())
    async with opening:
        ctx = _contexts.get(loop)
        if ctx is None or ctx.settings != settings():
            if ctx is not None:
                await ctx.aclose()
            ctx = await Context.open(settings())
            _contexts[loop] = ctx
    return ctx


def open_contexts() -> int:
    """How many contexts (pools, S3 clients) are open in this process."""
    return len(_contexts)


def close_contexts() -> None:
    """Close the contexts opened on the worker's event loop (called at worker shutdown)."""
    thread = get_event_loop_thread()
    if thread is None:
        return
    ctx = _contexts.pop(thread.loop, None)
    _opening.pop(thread.loop, None)
    if ctx is not None:
        thread.run_coroutine(ctx.aclose())
