"""Dramatiq's Redis dead-letter queues: list, show, replay and purge failed messages.

Dramatiq's ``RedisBroker`` (``dramatiq/brokers/redis/dispatch.lua``, command ``nack``) keeps
a message that failed for good in two keys per queue:

- ``<namespace>:<queue>.XQ``: a sorted set of Redis message ids, scored by when they died (ms);
- ``<namespace>:<queue>.XQ.msgs``: a hash of Redis message id -> encoded message.

The Redis id (``options["redis_message_id"]``) changes on every enqueue; the Dramatiq
``message_id`` is the one the logs carry, so both are accepted wherever an id is asked for.

The reason is the ``traceback`` option that the ``Retries`` middleware sets. Redis keeps the
copy enqueued for the last retry, so its traceback is the one of the attempt before the last
(usually the same error); a ``throws=`` error dies on its first attempt with no traceback at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import current_millis, q_name

# Suffix of a dead-letter sorted set, and of its message hash.
XQ_SUFFIX = ".XQ"
MSGS_SUFFIX = ".msgs"
# Options tied to the failed delivery; a replay starts without them.
DELIVERY_OPTIONS = ("redis_message_id", "retries", "traceback", "requeue_timestamp", "eta")
# SCAN batch size when looking for dead-letter queues.
SCAN_COUNT = 500
# Shown as the reason when a message died without a traceback.
NO_TRACEBACK = "no traceback recorded (failed on its first attempt, e.g. a throws= error)"


@dataclass(frozen=True)
class DeadLetter:
    """A dead-lettered message and why it died."""

    queue: str
    redis_id: str
    message_id: str
    actor_name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    retries: int
    failed_at_ms: int
    traceback: str | None

    @property
    def reason(self) -> str:
        """The last non-empty line of the traceback: the exception and its message."""
        if not self.traceback:
            return NO_TRACEBACK
        lines = [line for line in self.traceback.strip().splitlines() if line.strip()]
        return lines[-1].strip() if lines else NO_TRACEBACK


class DeadLetterNotFoundError(LookupError):
    """No dead-lettered message has this id (already replayed, purged or expired)."""

    def __init__(self, ident: str) -> None:
        super().__init__(f"no dead-lettered message {ident!r}: see `pagemill dlq list`")
        self.ident = ident


def _xq_key(broker: RedisBroker, queue: str) -> str:
    return f"{broker.namespace}:{q_name(queue)}{XQ_SUFFIX}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def dead_letter_queues(broker: RedisBroker) -> list[str]:
    """Names of the queues that have dead letters now (declared on this broker or not)."""
    prefix = f"{broker.namespace}:"
    names = set()
    for key in broker.client.scan_iter(match=f"{prefix}*{XQ_SUFFIX}", count=SCAN_COUNT):
        names.add(_text(key)[len(prefix) : -len(XQ_SUFFIX)])
    return sorted(names)


def _decode(queue: str, redis_id: str, raw: bytes, failed_at_ms: float) -> DeadLetter:
    message = Message.decode(raw)
    return DeadLetter(
        queue=queue,
        redis_id=redis_id,
        message_id=message.message_id,
        actor_name=message.actor_name,
        args=tuple(message.args),
        kwargs=dict(message.kwargs),
        retries=int(message.options.get("retries", 0)),
        failed_at_ms=int(failed_at_ms),
        traceback=message.options.get("traceback"),
    )


def list_dead_letters(broker: RedisBroker, *, queue: str | None = None) -> list[DeadLetter]:
    """Dead letters of one queue, or of every queue, oldest failure first."""
    letters: list[DeadLetter] = []
    for name in [q_name(queue)] if queue else dead_letter_queues(broker):
        key = _xq_key(broker, name)
        ids = cast("list[tuple[bytes, float]]", broker.client.zrange(key, 0, -1, withscores=True))
        if not ids:
            continue
        raws = broker.client.hmget(key + MSGS_SUFFIX, [rid for rid, _ in ids])
        for (rid, score), raw in zip(ids, raws, strict=True):
            if raw is not None:  # expired or replayed between the two reads
                letters.append(_decode(name, _text(rid), raw, score))
    return sorted(letters, key=lambda letter: letter.failed_at_ms)


def get_dead_letter(broker: RedisBroker, ident: str) -> DeadLetter:
    """The dead letter with this Dramatiq message id or Redis message id."""
    for letter in list_dead_letters(broker):
        if ident in (letter.message_id, letter.redis_id):
            return letter
    raise DeadLetterNotFoundError(ident)


def replay_dead_letter(broker: RedisBroker, ident: str) -> Message[Any]:
    """Enqueue a dead letter again on its queue, with fresh retries, and drop it from the DLQ.

    The Dramatiq message id is kept: logs, Celery results and operators follow one id across the
    failed attempts and the replay, as Dramatiq itself does for retries. ``enqueue`` gives it a
    new Redis id. The timestamp is reset so an ``AgeLimit`` does not drop the replayed message.
    """
    letter = get_dead_letter(broker, ident)
    key = _xq_key(broker, letter.queue)
    raw = cast("bytes | None", broker.client.hget(key + MSGS_SUFFIX, letter.redis_id))
    # ZREM first: of two replays racing on one message only the one that removed it enqueues.
    if raw is None or not broker.client.zrem(key, letter.redis_id):
        raise DeadLetterNotFoundError(ident)
    message = Message.decode(raw)
    options = {k: v for k, v in message.options.items() if k not in DELIVERY_OPTIONS}
    fresh: Message[Any] = Message(
        queue_name=q_name(message.queue_name),
        actor_name=message.actor_name,
        args=message.args,
        kwargs=message.kwargs,
        options=options,
        message_id=message.message_id,
        message_timestamp=current_millis(),
    )
    try:
        sent = broker.enqueue(fresh)
    except Exception:
        broker.client.zadd(key, {letter.redis_id: letter.failed_at_ms})
        raise
    broker.client.hdel(key + MSGS_SUFFIX, letter.redis_id)
    return sent


def replay_all(broker: RedisBroker, *, queue: str | None = None) -> list[Message[Any]]:
    """Replay every dead letter (of one queue, or of all), oldest first."""
    sent = []
    for letter in list_dead_letters(broker, queue=queue):
        try:
            sent.append(replay_dead_letter(broker, letter.redis_id))
        except DeadLetterNotFoundError:  # replayed by someone else meanwhile
            continue
    return sent


def purge_dead_letters(broker: RedisBroker, *, queue: str | None = None) -> int:
    """Delete the dead letters of one queue, or of every queue; return how many there were."""
    count = 0
    for name in [q_name(queue)] if queue else dead_letter_queues(broker):
        key = _xq_key(broker, name)
        with broker.client.pipeline() as pipe:
            pipe.zcard(key)
            pipe.delete(key, key + MSGS_SUFFIX)
            count += int(pipe.execute()[0])
    return count
