"""What a worker process holds, in one object: its settings and, per event loop, the pipeline
Context and the clients opened on that loop (LLM clients).

``state`` is that object. :class:`actors.middleware.ProcessResources` fills it at worker boot
(settings, logging) and closes it at shutdown; actors reach it through ``runtime.context()``
and ``runtime.state.resource(...)``. Nothing here is opened at import.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog
from dramatiq.asyncio import get_event_loop_thread

from pipeline.context import Context
from pipeline.logs import setup_logging
from pipeline.settings import Settings

# How long closing one event loop's resources (pool, S3 and LLM clients) may take at shutdown, seconds.
CLOSE_TIMEOUT_S = 10
log = structlog.get_logger(__name__)
T = TypeVar("T")
Close = Callable[[Any], Awaitable[None]]


@dataclass
class _Loop:
    """What one event loop of the process has opened."""

    opening: asyncio.Lock = field(default_factory=asyncio.Lock)
    ctx: Context | None = None
    # key -> (settings it was made with, the resource, how to close it)
    resources: dict[Hashable, tuple[Settings, Any, Close]] = field(default_factory=dict)

    async def aclose(self) -> None:
        resources, self.resources = self.resources, {}
        for _, resource, close in resources.values():
            await close(resource)
        ctx, self.ctx = self.ctx, None
        if ctx is not None:
            await ctx.aclose()


class ProcessState:
    """Settings, and per event loop a Context and named resources, opened on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loops: dict[asyncio.AbstractEventLoop, _Loop] = {}
        self._process: Settings | None = None
        self._override: Settings | None = None

    def configure(self, settings: Settings) -> None:
        """The settings this process runs with (ProcessResources gives them at worker boot)."""
        self._process = settings

    def use(self, settings: Settings | None) -> None:
        """Point pipeline resources at other settings (tests: a schema and storage per test)."""
        self._override = settings

    @property
    def settings(self) -> Settings:
        """A test's override, else the process's, else the environment's."""
        if self._override is not None:
            return self._override
        if self._process is None:
            self._process = Settings()
        return self._process

    def _loop(self) -> _Loop:
        loop = asyncio.get_running_loop()
        with self._lock:
            return self._loops.setdefault(loop, _Loop())

    async def context(self) -> Context:
        """The Context for the running event loop, (re)opened when the settings changed."""
        here, settings = self._loop(), self.settings
        if here.ctx is not None and here.ctx.settings == settings:
            return here.ctx
        async with here.opening:
            if here.ctx is None or here.ctx.settings != settings:
                if here.ctx is not None:
                    await here.ctx.aclose()
                here.ctx = await Context.open(settings)
        return here.ctx

    async def resource(self, key: Hashable, make: Callable[[Settings], T], close: Callable[[T], Awaitable[None]]) -> T:
        """The running loop's resource ``key``, made from the settings (again when they changed)."""
        here, settings = self._loop(), self.settings
        held = here.resources.get(key)
        if held is not None and held[0] == settings:
            return held[1]  # type: ignore[no-any-return]
        resource = make(settings)
        here.resources[key] = (settings, resource, close)
        if held is not None:
            await held[2](held[1])
        return resource

    def open_count(self) -> int:
        """How many contexts and resources are open in this process (tests check 0 after shutdown)."""
        return sum((here.ctx is not None) + len(here.resources) for here in self._loops.values())

    def close(self) -> None:
        """Close what every event loop opened, on that loop while it still runs (at worker shutdown).

        Resources go first, then the Context. A loop that has already stopped cannot close
        anything any more: its resources are only dropped, with a warning.
        """
        thread = get_event_loop_thread()
        with self._lock:
            loops, self._loops = self._loops, {}
        for loop, here in loops.items():
            if thread is not None and loop is thread.loop:
                thread.run_coroutine(here.aclose())
            elif loop.is_running():
                asyncio.run_coroutine_threadsafe(here.aclose(), loop).result(timeout=CLOSE_TIMEOUT_S)
            elif here.ctx is not None or here.resources:
                log.warning("runtime.context_dropped", reason="its event loop stopped before the context was closed")


state = ProcessState()
# The calls actors make most, bound to the process state.
context = state.context
use_settings = state.use


def settings() -> Settings:
    """The settings pipeline steps run with (see :attr:`ProcessState.settings`)."""
    return state.settings


def configure_logging() -> None:
    """Configure structlog once for a worker process, from settings."""
    s = state.settings
    setup_logging(level=s.log_level, fmt=s.log_format)


def last_error(message_data: dict[str, Any]) -> str:
    """The last line of the traceback Retries stored on a message whose retries ran out."""
    traceback = ((message_data.get("options") or {}).get("traceback") or "").strip()
    return traceback.splitlines()[-1] if traceback else "unknown error"
