"""Small Dramatiq middleware: log context per message, per-process resources."""

from __future__ import annotations

from typing import Any

import dramatiq
import structlog
from dramatiq.middleware import Middleware

from actors import runtime

# Message kwargs copied into every log line of the task.
LOGGED_KWARGS = ("document_id", "page_no", "storage_key")


class LogContext(Middleware):
    """Bind task, message_id, document_id and page_no to every log line of a message."""

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.Message[Any]) -> None:
        structlog.contextvars.clear_contextvars()
        fields = {k: message.kwargs[k] for k in LOGGED_KWARGS if message.kwargs.get(k) is not None}
        structlog.contextvars.bind_contextvars(
            task=message.actor_name, message_id=message.message_id, retries=message.options.get("retries", 0), **fields
        )

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: dramatiq.Message[Any],
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        structlog.contextvars.clear_contextvars()

    after_skip_message = after_process_message


class ProcessResources(Middleware):
    """Configure logging at worker boot; close pools and clients at shutdown."""

    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        runtime.configure_logging()

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        runtime.close_contexts()
