"""What the app holds for its lifetime (made once in the lifespan), and how routes reach it."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog
from redis.asyncio import Redis
from starlette.requests import Request

from actors.producer import Producer
from pipeline.context import Context
from pipeline.outputs.formats import OUTPUTS
from pipeline.settings import Settings

if TYPE_CHECKING:  # web.metrics reads AppState at request time
    from web.metrics import Metrics

log = structlog.get_logger(__name__)

@dataclass(slots=True)
class AppState:
    """Per-process resources of the web app."""

    settings: Settings
    ctx: Context
    redis: Redis
    metrics: Metrics
    producer: Producer


def app_state(request: Request) -> AppState:
    """The AppState of the app serving ``request``."""
    state: AppState = request.app.state.pagemill
    return state


def links(document_id: uuid.UUID, outputs: Iterable[str] = ()) -> dict[str, str]:
    """URLs of everything a client can do with a document (and the outputs it asked for)."""
    base = f"/api/documents/{document_id}"
    names = ("status", "progress", "text", "result.json", "events", "cancel", "reprocess")
    out = {"self": base}
    out.update({name.replace(".json", ""): f"{base}/{name}" for name in names})
    out.update({name: f"{base}/result.{OUTPUTS[name].suffix}" for name in outputs})
    return out


async def try_enqueue(state: AppState, document_id: uuid.UUID) -> str | None:
    """Send tasks.ocr_document; None when the broker failed (the document stays ``queued``)."""
    try:
        return await state.producer.ocr_document(document_id)
    except Exception as exc:  # noqa: BLE001 - whatever the broker raised, the row is already committed
        # The reaper re-sends documents left in `queued` (PAGEMILL_REAPER_AGE_S), so the upload
        # is not lost; refusing it now would make clients upload it twice.
        log.warning("document.enqueue_failed", document_id=str(document_id), error=repr(exc))
        return None
