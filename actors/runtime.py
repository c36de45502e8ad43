"""The pipeline Context of this worker process, made once per event loop and reused; helpers every actor module shares."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from dramatiq.asyncio import get_event_loop_thread

from pipeline.context import Context
from pipeline.logs import setup_logging
from pipeline.settings import Settings

# How long closing one context (pool, S3 client) may take at shutdown, seconds.
CLOSE_TIMEOUT_S = 10
log = structlog.get_logger(__name__)

_lock = threading.Lock()
_contexts: dict[asyncio.AbstractEventLoop, Context] = {}
_opening: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}
_override: Settings | None = None
_process: Settings | None = None
# Per event loop: what else to close at worker shutdown (LLM clients), before its Context.
_closers: dict[asyncio.AbstractEventLoop, list[Callable[[], Awaitable[None]]]] = {}


def set_process_settings(settings: Settings) -> None:
    """The settings this process runs with (``actors.broker.setup_broker`` gives them once)."""
    global _process
    _process = settings


def use_settings(settings: Settings | None) -> None:
    """Point pipeline resources at other settings (tests: a schema and storage per test)."""
    global _override
    _override = settings


def settings() -> Settings:
    """The settings pipeline steps run with: a test's override, else the process's (from the environment)."""
    global _process
    if _override is not None:
        return _override
    if _process is None:
        _process = Settings()
    return _process


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


def close_with_loop(close: Callable[[], Awaitable[None]]) -> None:
    """Await ``close()`` on the running loop when the worker shuts down (see ``close_contexts``)."""
    _closers.setdefault(asyncio.get_running_loop(), []).append(close)


def open_contexts() -> int:
    """How many contexts (pools, S3 clients) are open in this process."""
    return len(_contexts)


def close_contexts() -> None:
    """Close every context this process opened, and what was registered with each loop (at worker shutdown).

    Each is closed on the loop it was opened on while that loop still runs; a context whose loop
    has already stopped cannot be closed any more and is only dropped, with a warning.
    """
    thread = get_event_loop_thread()
    for loop in {*_contexts, *_closers}:
        ctx = _contexts.pop(loop, None)
        _opening.pop(loop, None)
        closers = _closers.pop(loop, [])

        async def close_all(ctx: Context | None = ctx, closers: list[Callable[[], Awaitable[None]]] = closers) -> None:
            for close in closers:
                await close()
            if ctx is not None:
                await ctx.aclose()

        if thread is not None and loop is thread.loop:
            thread.run_coroutine(close_all())
        elif loop.is_running():
            asyncio.run_coroutine_threadsafe(close_all(), loop).result(timeout=CLOSE_TIMEOUT_S)
        else:
            log.warning("runtime.context_dropped", reason="its event loop stopped before the context was closed")


def last_error(message_data: dict[str, Any]) -> str:
    """The last line of the traceback Retries stored on a message whose retries ran out."""
    traceback = ((message_data.get("options") or {}).get("traceback") or "").strip()
    return traceback.splitlines()[-1] if traceback else "unknown error"
