"""Celery results written the way Celery's Redis backend writes them, so ``AsyncResult`` works.

Celery (``celery/backends/redis.py``, ``RedisBackend._set``) stores a task's state with
``SETEX celery-task-meta-<id> <expires> <json>`` and ``PUBLISH``es the same JSON on a channel of
that name, in one ``MULTI``; ``AsyncResult.get()`` waits on that channel after one ``GET``. A
failure's ``result`` is ``{"exc_type", "exc_message": [args], "exc_module"}`` (``prepare_exception``
with the json serializer); the client rebuilds an exception class of that name and raises it.

:class:`CeleryResults` is the worker-side middleware: a message the bridge sent carries the
``celery`` option; when it finishes its Celery result is written (SUCCESS with the return value,
RETRY while Dramatiq retries it, FAILURE when it failed for good, REVOKED when it expired).
``tasks.ocr_document`` is finished only when its document is aggregated: see
:func:`document_finished`.
"""

from __future__ import annotations

import functools
import json
import traceback as tb
import uuid
from datetime import UTC, datetime
from typing import Any

import dramatiq
import redis
import structlog
from dramatiq.broker import MessageProxy
from dramatiq.middleware import Middleware

log = structlog.get_logger(__name__)

# Celery's key prefix for task results (celery/backends/base.py, KeyValueStoreBackend.task_keyprefix).
RESULT_KEY_PREFIX = "celery-task-meta-"
# How long a result is kept, seconds: Celery's default ``result_expires`` (one day).
RESULT_EXPIRES_S = 86_400
# Document id -> Celery task ids waiting for that document (a set), kept this long, seconds.
DOCUMENT_KEY_PREFIX = "pagemill:celery:document:"
DOCUMENT_KEY_TTL_S = 7 * 86_400
# Message option the bridge sets; its presence marks a message whose Celery result we owe.
OPTION = "celery"
# Actors whose Celery result is the aggregated document, written by document_finished().
DEFERRED_ACTORS = frozenset({"tasks.ocr_document", "tasks.ocr_pdf_document"})


def _now_iso() -> str:
    # Celery 5.3+ writes an aware UTC ``date_done`` with isoformat().
    return datetime.now(UTC).isoformat()


def _jsonable(value: Any) -> Any:
    """``value`` if JSON can carry it, else its repr (Celery's ensure_serializable does the same)."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def exception_result(exc_type: str, message: str, exc_module: str | None = "builtins") -> dict[str, Any]:
    """A Celery ``result`` for a failure (json serializer form)."""
    return {"exc_type": exc_type, "exc_message": [message], "exc_module": exc_module}


class ResultWriter:
    """Writes Celery task states into a Redis database (CELERY_RESULT_BACKEND, else the broker)."""

    def __init__(self, url: str, *, expires_s: int = RESULT_EXPIRES_S) -> None:
        self.client = redis.Redis.from_url(url)
        self.expires_s = expires_s

    def store(
        self,
        task_id: str,
        status: str,
        result: Any,
        *,
        traceback: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> bool:
        """Write one state; False when a SUCCESS is already there (Celery ignores later updates too)."""
        key = RESULT_KEY_PREFIX + task_id
        # Like BaseKeyValueStoreBackend._store_result: a lost/duplicate run must not overwrite SUCCESS.
        current = self.client.get(key)
        if current is not None and json.loads(current).get("status") == "SUCCESS":
            return False
        meta = {
            "status": status,
            "result": _jsonable(result),
            "traceback": traceback,
            "children": [],
            "date_done": _now_iso() if status in ("SUCCESS", "FAILURE", "REVOKED") else None,
            **(extra or {}),
            "task_id": task_id,
        }
        value = json.dumps(meta)
        with self.client.pipeline(transaction=True) as pipe:
            # SETEX exactly as Celery sends it (redis-py 6 deprecates the setex() helper, not the command).
            pipe.execute_command("SETEX", key, self.expires_s, value)  # type: ignore[no-untyped-call]
            pipe.publish(key, value)
            pipe.execute()
        return True

    def success(self, task_id: str, result: Any, **extra: Any) -> bool:
        """The task returned ``result``."""
        return self.store(task_id, "SUCCESS", result, extra=extra)

    def failure(
        self,
        task_id: str,
        exc_type: str,
        message: str,
        *,
        exc_module: str | None = "builtins",
        traceback: str | None = None,
        status: str = "FAILURE",
        **extra: Any,
    ) -> bool:
        """The task failed (or RETRY/REVOKED with ``status``); the producer sees ``exc_type(message)``."""
        return self.store(
            task_id, status, exception_result(exc_type, message, exc_module), traceback=traceback, extra=extra
        )

    def failure_from(
        self,
        task_id: str,
        exc: BaseException,
        *,
        traceback: str | None = None,
        status: str = "FAILURE",
        **extra: Any,
    ) -> bool:
        """Write ``exc`` as Celery's json serializer does (qualname, module, args)."""
        kind = type(exc)
        result = {
            "exc_type": kind.__qualname__,
            "exc_message": [_jsonable(a) for a in exc.args],
            "exc_module": kind.__module__,
        }
        return self.store(task_id, status, result, traceback=traceback, extra=extra)

    def revoked(self, task_id: str, reason: str) -> bool:
        """Celery's ``mark_as_revoked``: REVOKED with a TaskRevokedError(reason)."""
        return self.failure(
            task_id, "TaskRevokedError", reason, exc_module="celery.exceptions", status="REVOKED"
        )

    def watch_document(self, document_id: str, task_id: str) -> None:
        """Remember that ``task_id``'s result is ``document_id``'s aggregated result."""
        key = DOCUMENT_KEY_PREFIX + document_id
        with self.client.pipeline(transaction=True) as pipe:
            pipe.sadd(key, task_id)
            pipe.expire(key, DOCUMENT_KEY_TTL_S)
            pipe.execute()

    def take_watchers(self, document_id: str) -> list[str]:
        """The task ids waiting on ``document_id`` (forgotten once read)."""
        key = DOCUMENT_KEY_PREFIX + document_id
        with self.client.pipeline(transaction=True) as pipe:
            pipe.smembers(key)
            pipe.delete(key)
            members, _ = pipe.execute()
        return sorted(m.decode() for m in members)


def writer() -> ResultWriter:
    """The result writer of this process's broker (its :class:`CeleryResults` middleware)."""
    for middleware in dramatiq.get_broker().middleware:
        if isinstance(middleware, CeleryResults):
            return middleware.writer
    raise RuntimeError("the broker has no CeleryResults middleware: build it with actors.broker.setup_broker")


def document_payload(document_id: uuid.UUID | str, result: Any) -> dict[str, Any]:
    """What a Celery ``tasks.ocr_document`` call returns: the aggregated document's text and status."""
    return {
        "document_id": str(document_id),
        "status": getattr(result.status, "value", str(result.status)),
        "error": result.error,
        "page_count": result.data.get("page_count"),
        "text": result.text,
    }


def document_finished(document_id: uuid.UUID | str, result: Any) -> None:
    """Write the Celery results waiting on an aggregated document (``DocumentResult`` or None)."""
    if result is None:
        return  # duplicate aggregation: the first one wrote the result
    results = writer()
    payload = document_payload(document_id, result)
    for task_id in results.take_watchers(str(document_id)):
        if payload["status"] == "error":  # every page failed: the producer gets an exception
            results.failure(
                task_id, "PagemillError", result.error or "every page failed", exc_module="pipeline.errors"
            )
        else:
            results.success(task_id, payload)


def document_failed(document_id: uuid.UUID | str, reason: str) -> None:
    """A document that ended ``error`` outside aggregation: its waiting Celery producers get FAILURE."""
    results = writer()
    for task_id in results.take_watchers(str(document_id)):
        results.failure(task_id, "PagemillError", reason, exc_module="pipeline.errors")


def document_revoked(document_id: uuid.UUID | str, reason: str) -> int:
    """A cancelled document: its waiting Celery producers get REVOKED (``TaskRevokedError``)."""
    results = writer()
    watchers = results.take_watchers(str(document_id))
    for task_id in watchers:
        results.revoked(task_id, reason)
    return len(watchers)


class CeleryResults(Middleware):
    """Write the Celery result of every message that came through the Celery bridge.

    ``results_url`` is CELERY_RESULT_BACKEND (else the broker's Redis); None on a broker that
    serves no Celery producer, where a bridged message's result cannot be written.
    """

    def __init__(self, *, results_url: str | None) -> None:
        self.results_url = results_url

    @functools.cached_property
    def writer(self) -> ResultWriter:
        """One writer (one connection pool) per process, made on first use."""
        if self.results_url is None:
            raise RuntimeError("no Celery result backend: set CELERY_RESULT_BACKEND or REDIS_URL")
        return ResultWriter(self.results_url)

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        marker = message.options.get(OPTION)
        if not isinstance(marker, dict) or marker.get("ignore_result"):
            return
        extra = {k: marker[k] for k in ("group_id", "parent_id") if marker.get(k)}
        if exception is None:
            if message.actor_name not in DEFERRED_ACTORS:
                self.writer.success(message.message_id, result, **extra)
            return
        # Retries ran before us (we sit before it in the list) and marked the message failed if it is done.
        failed = message.failed
        trace = message.options.get("traceback") or "".join(tb.format_exception(exception))
        self.writer.failure_from(
            message.message_id, exception, traceback=trace, status="FAILURE" if failed else "RETRY", **extra
        )

    def after_skip_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        # AgeLimit skips a message past its max_age, which the bridge sets from Celery's `expires`.
        marker = message.options.get(OPTION)
        if isinstance(marker, dict) and not marker.get("ignore_result"):
            self.writer.revoked(message.message_id, "expired")
