"""Celery protocol bridge: Celery producers' Redis lists -> pagemill's Dramatiq actors.

A Celery producer LPUSHes a JSON envelope (see :mod:`actors.celery_protocol`) onto the list named
after the queue, or ``<queue>\\x06\\x16<step>`` for a priority (kombu ``Channel._q_for_pri``; steps
0, 3, 6, 9, the lower served first). The bridge moves messages with ``LMOVE``/``BLMOVE`` into its
own processing list, then in one ``MULTI`` enqueues each on Dramatiq (the actor of the same name,
the Celery id as message id) and removes it from the processing list. A crash anywhere leaves the
message in the queue or the processing list; a restart dispatches what the processing list holds,
and a dispatch cannot half-happen, so each message runs once.

Importing this module also adds :class:`~actors.celery_results.CeleryResults` to the workers'
broker (actors/ocr.py imports it for the document hook), so bridged messages get their results.
"""

from __future__ import annotations

import importlib
import itertools
import signal
import threading
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import dramatiq
import redis
import structlog
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import current_millis, dq_name
from dramatiq.errors import ActorNotFound

from actors.broker import setup_broker
from actors.celery_protocol import (
    PRIORITY_SEP,
    PRIORITY_STEPS,
    CeleryTask,
    RefusedMessage,
    parse_message,
    priority_key,
)
from actors.celery_results import (
    DEFERRED_ACTORS,
    OPTION,
    ResultWriter,
    document_failed,
    document_finished,
    document_revoked,
)
from pipeline.intake import document_id_for_message
from pipeline.settings import Settings

__all__ = ["Bridge", "document_failed", "document_finished", "document_revoked", "run_bridge"]

log = structlog.get_logger(__name__)

# Messages moved and dispatched per round trip when the queues are busy.
BATCH = 200
# When every list is empty, block this long on one queue's list (seconds), then look at all again:
# BLMOVE watches one key, so priority lists and other queues wait at most this long when idle.
IDLE_BLOCK_S = 0.5
# After a Redis error, wait this long before trying again, seconds.
RETRY_PAUSE_S = 1.0
# Dramatiq keeps delayed messages in worker memory; Celery etas past this are refused, seconds.
MAX_ETA_S = 7 * 86_400

# Moves up to ARGV[1] messages from KEYS[2..] (in priority order) to KEYS[1], oldest first.
_TAKE_LUA = """
local out = {}
local n = tonumber(ARGV[1])
for i = 2, #KEYS do
  while #out < n do
    local m = redis.call('LMOVE', KEYS[i], KEYS[1], 'RIGHT', 'LEFT')
    if not m then break end
    out[#out + 1] = m
  end
  if #out >= n then break end
end
return out
"""


class Bridge:
    """Moves Celery messages from Redis lists to Dramatiq, crash-safe; one per ``name`` at a time."""

    def __init__(
        self,
        broker: RedisBroker,
        *,
        queues: Sequence[str],
        results_url: str,
        name: str = "default",
        batch: int = BATCH,
    ) -> None:
        if not queues:
            raise ValueError("the bridge needs at least one Celery queue")
        self.broker = broker
        self.client: redis.Redis = broker.client
        self.results = ResultWriter(results_url)
        self.processing = f"pagemill:celery-bridge:{name}:processing"
        # Messages without a task id cannot get a FAILURE result: they are kept here for operators.
        self.unreadable = f"pagemill:celery-bridge:{name}:unreadable"
        # Priority-major, like kombu's BRPOP key order: every queue's step 0 before any step 3.
        self.keys = [priority_key(q, p) for p in PRIORITY_STEPS for q in queues]
        self.batch = batch
        self._take = self.client.register_script(_TAKE_LUA)
        self._block_on = itertools.cycle(list(queues))
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask :meth:`run` to return after the current round (within IDLE_BLOCK_S)."""
        self._stop.set()

    def run(self) -> None:
        """Recover what a previous run left in the processing list, then bridge until stopped."""
        log.info(
            "celery_bridge.started",
            queues=sorted({k.split(PRIORITY_SEP)[0] for k in self.keys}),
            processing=self.processing,
        )
        recovered = False
        while not self._stop.is_set():
            try:
                if not recovered:
                    self.recover()
                    recovered = True
                self.handle(self.take())
            except redis.RedisError as exc:
                log.warning("celery_bridge.redis_error", error=str(exc))
                recovered = False  # what was taken but not dispatched is in the processing list
                self._stop.wait(RETRY_PAUSE_S)
        log.info("celery_bridge.stopped")

    def recover(self) -> int:
        """Dispatch the messages a crashed run moved but did not dispatch; returns how many."""
        raws: list[bytes] = self.client.lrange(self.processing, 0, -1)  # type: ignore[assignment]
        if raws:
            log.warning("celery_bridge.recovering", messages=len(raws))
            self.handle(list(reversed(raws)))  # LMOVE pushes left: the oldest is at the right
        return len(raws)

    def take(self) -> list[bytes]:
        """Move the next messages into the processing list, blocking briefly when there are none."""
        raws: list[bytes] = self._take(keys=[self.processing, *self.keys], args=[self.batch])
        if raws:
            return raws
        # Redis takes a fractional timeout (6.0+); redis-py's annotation says int.
        timeout: Any = IDLE_BLOCK_S
        raw = self.client.blmove(next(self._block_on), self.processing, timeout, "RIGHT", "LEFT")
        return [raw] if isinstance(raw, bytes) else []

    def handle(self, raws: Iterable[bytes]) -> None:
        """Dispatch or refuse the head of the processing list; drop it from there in the same MULTI."""
        sent: list[tuple[dramatiq.Message[Any], int | None]] = []
        count = 0
        with self.client.pipeline(transaction=True) as pipe:
            for raw in raws:
                count += 1
                task: CeleryTask | None = None
                try:
                    task = parse_message(raw)
                    message, delay = self._plan(task)
                    self._enqueue_in(pipe, message, delay)
                    sent.append((message, delay))
                except RefusedMessage as exc:
                    self._refuse(raw, exc)
                except _Expired as exc:
                    self.results.revoked(exc.task_id, "expired")
                    log.info("celery_bridge.expired", task_id=exc.task_id)
                except redis.RedisError:
                    raise  # leave the batch in the processing list; run() retries
                except Exception as exc:  # one odd message must not stop the bridge
                    log.exception("celery_bridge.unexpected", error=str(exc))
                    reason = f"the bridge could not dispatch it: {exc!r}"
                    self._refuse(raw, RefusedMessage(reason, task_id=task.task_id if task else None))
            # The batch is the head of the processing list (LMOVE pushes left; only this bridge
            # writes there): drop it in the same MULTI as the enqueues.
            pipe.ltrim(self.processing, count, -1)
            pipe.execute()
        for message, delay in sent:
            self.broker.emit_after("enqueue", message, delay)
            log.debug("celery_bridge.dispatched", task=message.actor_name, task_id=message.message_id)

    def _plan(self, task: CeleryTask) -> tuple[dramatiq.Message[Any], int | None]:
        try:
            actor = self.broker.get_actor(task.name)
        except ActorNotFound:
            raise RefusedMessage(
                f"unknown task {task.name!r}: pagemill has no actor of that name",
                task_id=task.task_id,
                task_name=task.name,
            ) from None
        now = current_millis()
        options: dict[str, Any] = {
            OPTION: {
                "ignore_result": task.ignore_result,
                "group_id": task.group_id,
                "parent_id": task.parent_id,
            }
        }
        if task.expires is not None:
            left = int(task.expires.timestamp() * 1000) - now
            if left <= 0:
                raise _Expired(task.task_id)
            options["max_age"] = left  # AgeLimit skips it later; CeleryResults writes REVOKED
        if task.time_limit_s is not None:
            options["time_limit"] = int(task.time_limit_s * 1000)
        # What RedisBroker.enqueue adds: its own id for the message, and for a delay the delay
        # queue and the eta (dramatiq/brokers/redis.py).
        options["redis_message_id"] = str(uuid.uuid4())
        queue_name, delay = actor.queue_name, None
        if task.eta is not None:
            delay = int(task.eta.timestamp() * 1000) - now
            if delay > MAX_ETA_S * 1000:
                raise RefusedMessage(
                    f"eta {task.eta.isoformat()} is more than {MAX_ETA_S // 86_400} days ahead",
                    task_id=task.task_id,
                    task_name=task.name,
                )
            if delay > 0:
                queue_name, options["eta"] = dq_name(queue_name), now + delay
            else:
                delay = None
        if task.name in DEFERRED_ACTORS and not task.ignore_result:
            self.results.watch_document(self._document_id(task), task.task_id)
        message: dramatiq.Message[Any] = dramatiq.Message(
            queue_name=queue_name, actor_name=actor.actor_name, args=tuple(task.args),
            kwargs=task.kwargs, options=options, message_id=task.task_id, message_timestamp=now,
        )  # fmt: skip
        return message, delay

    @staticmethod
    def _document_id(task: CeleryTask) -> str:
        """The document an OCR call works on: given, or derived from the message id (as actors/ocr.py does)."""
        given = task.kwargs.get("document_id") or (task.args[0] if task.args else None)
        return str(given) if given else str(document_id_for_message(task.task_id))

    def _enqueue_in(self, pipe: Any, message: dramatiq.Message[Any], delay: int | None) -> None:
        """RedisBroker.enqueue of a message _plan made, queued on ``pipe``: it commits with the LTRIM."""
        self.broker.emit_before("enqueue", message, delay)
        # Same ARGV as RedisBroker._dispatch("enqueue") passes to dramatiq's dispatch.lua (read in
        # dramatiq 2.2.1); tests/celery runs real workers on what this writes, so a change fails there.
        b = self.broker
        b.scripts["dispatch"](
            keys=[b.namespace],
            args=[
                "enqueue",
                current_millis(),
                message.queue_name,
                b.broker_id,
                b.heartbeat_timeout,
                b.dead_message_ttl,
                0,
                b._max_unpack_size(),  # type: ignore[no-untyped-call]
                message.options["redis_message_id"],
                message.encode(),
            ],
            client=pipe,
        )

    def _refuse(self, raw: bytes, exc: RefusedMessage) -> None:
        log.warning("celery_bridge.refused", task_id=exc.task_id, task=exc.task_name, reason=exc.reason)
        if exc.task_id is None:
            self.client.lpush(self.unreadable, raw)
            return
        self.results.failure(exc.task_id, "RefusedMessage", exc.reason, exc_module="actors.celery_protocol")


class _Expired(Exception):
    def __init__(self, task_id: str) -> None:
        super().__init__(task_id)
        self.task_id = task_id


def default_queues(settings: Settings) -> list[str]:
    """The seed's queues: CELERY_OCR_QUEUE and CELERY_DEFAULT_QUEUE."""
    return list(dict.fromkeys([settings.ocr_queue, settings.default_queue]))


def run_bridge(
    settings: Settings,
    *,
    queues: Sequence[str] | None = None,
    name: str = "default",
    modules: Sequence[str] = ("actors.ocr", "actors.llm"),
) -> None:
    """``pagemill celery-bridge``: declare the actors, then bridge until SIGTERM/SIGINT."""
    from pipeline.logs import setup_logging

    setup_logging(level=settings.log_level, fmt=settings.log_format)
    broker = setup_broker(settings)
    for module in modules:
        importlib.import_module(module)  # declares the actors the bridge maps task names to
    if settings.results_url is None:
        raise RuntimeError("set REDIS_URL (or CELERY_BROKER_URL) for the Celery bridge")
    bridge = Bridge(
        broker, queues=list(queues or default_queues(settings)), results_url=settings.results_url, name=name
    )
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: bridge.stop())
    bridge.run()

