"""structlog configuration: called once per process at the edge (CLI, worker boot, app factory)."""

from __future__ import annotations

import logging
import os
import sys
from typing import Literal

import structlog

_configured = False


def _add_pid(_: object, __: str, event: structlog.typing.EventDict) -> structlog.typing.EventDict:
    # Which worker process wrote the line (dramatiq --processes N forks N of them).
    event.setdefault("pid", os.getpid())
    return event


def setup_logging(*, level: str = "INFO", fmt: Literal["auto", "json", "console"] = "auto") -> None:
    """JSON lines in production, readable console output in a terminal; idempotent."""
    global _configured
    if _configured:
        return
    _configured = True
    json_output = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        *([_add_pid] if json_output else []),
    ]
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json_output else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        # One write() per line (PrintLogger writes the newline apart): a multi-process `dramatiq`
        # worker forwards each write of its children as one message, so lines never interleave.
        logger_factory=structlog.WriteLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    # Library logs (dramatiq, asyncpg, botocore) go through the same renderer.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
                                            foreign_pre_chain=shared)
    )
    handler.setLevel(level.upper())  # libraries that set their own logger level to INFO still obey ours
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("botocore", "aiobotocore", "urllib3", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
