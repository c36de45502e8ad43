"""Small Dramatiq middleware: log context per message, per-process resources."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

import dramatiq
import structlog
from dramatiq.middleware import Middleware

from actors import runtime
from pipeline.settings import Settings

# Message kwargs copied into every log line of the task.
LOGGED_KWARGS = ("document_id", "page_no", "storage_key")
# A second SIGTERM this soon after the first is the same shutdown delivered twice, seconds.
DUPLICATE_SIGTERM_WINDOW_S = 5.0


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
    """Fill the process state at worker boot (settings, logging); close what it opened at shutdown."""

    def __init__(self, state: runtime.ProcessState, settings: Settings) -> None:
        self.state = state
        self.settings = settings

    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self.state.configure(self.settings)
        runtime.configure_logging()
        logging.getLogger("dramatiq.worker.WorkerThread").addFilter(_drop_results_warning)
        _absorb_duplicate_sigterm()

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self.state.close()


def _drop_results_warning(record: logging.LogRecord) -> bool:
    """Drop Dramatiq's "returned a value but no Results middleware" warning.

    Return values that matter (``tasks.echo``, stand-alone pages) reach Celery producers through
    CeleryResults; Dramatiq only recognises its own Results class, and logging the warning on
    every such message cost ~13% of worker time in the queue benchmark.
    """
    return not str(record.msg).startswith("Actor '%s' returned a value that is not None")


def _absorb_duplicate_sigterm() -> None:
    """In a `dramatiq` CLI worker process, treat a SIGTERM repeated within seconds as one.

    Process managers (honcho, Heroku, `kill -- -PGID`) signal the whole process group, and
    dramatiq's main process forwards the same SIGTERM to its workers: each worker gets it twice.
    Dramatiq 2.2 reads the second one as "kill now" and calls sys.exit() from the main thread
    while its worker threads still run, and the process hangs until SIGKILL. A later SIGTERM,
    outside the window, still escalates as dramatiq intends.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    handler = signal.getsignal(signal.SIGTERM)
    if not callable(handler) or getattr(handler, "__qualname__", "") != "worker_process.<locals>.termhandler":
        return  # not dramatiq's CLI worker (an in-process Worker in a test or the CLI's own)
    dramatiq_handler: Callable[[int, FrameType | None], Any] = handler
    first: list[float] = []

    def once(signum: int, frame: FrameType | None) -> None:
        now = time.monotonic()
        if first and now - first[0] < DUPLICATE_SIGTERM_WINDOW_S:
            return
        first.append(now)
        dramatiq_handler(signum, frame)

    signal.signal(signal.SIGTERM, once)
