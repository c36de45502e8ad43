"""``tasks.notify_callback``: POST a document's final status to its ``callback_url`` (default queue).

Whoever sets a final status calls :func:`notify_if_final` after commit; it sends the message
only when the document has a callback URL not yet served for that status. The actor is
idempotent (``pipeline.callbacks`` records each delivery in PostgreSQL) and retried with
exponential backoff while the receiver fails; a 4xx answer other than 408/425/429 ends it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import dramatiq
import httpx

from actors import runtime
from actors.broker import DEFAULT
from pipeline.callbacks import deliver, wants_notification
from pipeline.errors import PermanentError
from pipeline.jobs import parse_id

# Attempts after the first; with the default backoff (1 s doubling to 60 s) about 3 minutes in all.
CALLBACK_MAX_RETRIES = 8
CALLBACK_TIME_LIMIT_MS = 120_000


@dramatiq.actor(
    actor_name="tasks.notify_callback",
    queue_name=DEFAULT,
    max_retries=CALLBACK_MAX_RETRIES,
    throws=PermanentError,  # CallbackRejectedError, NotFoundError, ...: retried only if retryable
    time_limit=CALLBACK_TIME_LIMIT_MS,
)
async def notify_callback(document_id: str, **_: Any) -> dict[str, Any]:
    """POST ``{id, status, error, links}`` to the document's callback URL, signed, once."""
    ctx = await runtime.context()
    async with httpx.AsyncClient(follow_redirects=False) as client:
        done = await deliver(ctx, parse_id(document_id), client=client)
    return {"document_id": document_id, "outcome": done.outcome, "status": done.status, "attempts": done.attempts}


async def notify_if_final(document_id: str) -> bool:
    """Send ``tasks.notify_callback`` if the document is final and wants a notification."""
    ctx = await runtime.context()
    if not await wants_notification(ctx, parse_id(document_id)):
        return False
    await asyncio.to_thread(notify_callback.send, document_id=document_id)
    return True
