"""Actors on the default queue. LLM post-processing lands here; for now the seed's smoke task."""

from __future__ import annotations

from typing import Any

import dramatiq

from actors.broker import current_settings, setup_broker

broker = setup_broker()
DEFAULT_QUEUE = current_settings().default_queue


@dramatiq.actor(actor_name="tasks.echo", queue_name=DEFAULT_QUEUE, max_retries=0)
def echo(*args: Any, **kwargs: Any) -> Any:
    """Return the payload unchanged (the seed's smoke test: ``echo.delay({"hello": "world"})``)."""
    if kwargs and not args:
        return kwargs.get("payload", kwargs)
    return args[0] if len(args) == 1 else list(args)
