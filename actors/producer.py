"""What web and the CLI send to workers: messages by task name, through the process's broker.

The actors are declared (imported) here, so a sender never imports an actor module at request
time; sending is blocking Redis I/O and runs in a thread.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import dramatiq

import actors.ocr  # noqa: F401 - declares the tasks sent here


class Producer:
    """Sends pagemill's tasks on ``broker`` (the one ``actors.broker.setup_broker`` returned)."""

    def __init__(self, broker: dramatiq.Broker) -> None:
        self.broker = broker

    async def send(self, actor_name: str, **kwargs: Any) -> str:
        """Send one message to the actor declared as ``actor_name``; its message id."""
        actor = self.broker.get_actor(actor_name)
        message = await asyncio.to_thread(actor.send, **kwargs)
        return str(message.message_id)

    async def ocr_document(self, document_id: uuid.UUID) -> str:
        """Start OCR of a stored document (``tasks.ocr_document``)."""
        return await self.send("tasks.ocr_document", document_id=str(document_id))

    async def document_cancelled(self, document_id: uuid.UUID) -> str:
        """Tell a cancelled document's waiters (``tasks.document_cancelled``)."""
        return await self.send("tasks.document_cancelled", document_id=str(document_id))
