"""Dramatiq's queues as its Redis broker keeps them: messages per queue and the oldest one's age.

Dramatiq's Redis broker keeps message ids in the list ``<ns>:<queue>`` (sent with RPUSH, taken
with LPOP), their bodies in the hash ``<ns>:<queue>.msgs``, delayed ones in the list
``<ns>:<queue>.DQ`` and dead letters in the sorted set ``<ns>:<queue>.XQ`` (its ``dispatch.lua``).
These are read directly, without the broker, so a scrape needs no actor modules.
"""

from __future__ import annotations

import json
import time

from redis.asyncio import Redis

from pipeline.settings import Settings

# Messages looked at from the head of each queue for the oldest one: requeued messages go to the
# tail, so the head is nearly, not strictly, in age order.
OLDEST_SCAN = 10

# (queue, kind) -> messages; kind is "ready", "delayed" or "dead".
QueueDepths = dict[tuple[str, str], int]


async def queue_depths(redis: Redis, settings: Settings) -> tuple[QueueDepths, dict[str, float]]:
    """Messages per queue and kind, and the age in seconds of each queue's oldest waiting message."""
    ns = settings.redis_namespace
    queues = list(dict.fromkeys([settings.ocr_queue, settings.default_queue]))
    pipe = redis.pipeline(transaction=False)
    for queue in queues:
        pipe.llen(f"{ns}:{queue}")
        pipe.llen(f"{ns}:{queue}.DQ")
        pipe.zcard(f"{ns}:{queue}.XQ")
        pipe.lrange(f"{ns}:{queue}", 0, OLDEST_SCAN - 1)
    counts = await pipe.execute()
    depths: QueueDepths = {}
    heads: dict[str, list[bytes]] = {}
    for i, queue in enumerate(queues):
        ready, delayed, dead, heads[queue] = counts[4 * i : 4 * i + 4]
        depths.update({(queue, "ready"): ready, (queue, "delayed"): delayed, (queue, "dead"): dead})
    pipe = redis.pipeline(transaction=False)
    for queue in queues:
        pipe.hmget(f"{ns}:{queue}.msgs", heads[queue] or ["-"])
    bodies = await pipe.execute()
    now_ms = time.time() * 1000
    oldest = {
        queue: max((now_ms - _waiting_since_ms(b) for b in found if b is not None), default=0.0) / 1000.0
        for queue, found in zip(queues, bodies, strict=True)
    }
    return depths, {q: max(0.0, round(age, 3)) for q, age in oldest.items()}


def _waiting_since_ms(body: bytes) -> float:
    # A message waits from when it was sent, or from its eta when it was delayed (a retry).
    try:
        data = json.loads(body)
        return max(float(data["message_timestamp"]), float(data.get("options", {}).get("eta") or 0))
    except (ValueError, KeyError, TypeError):
        return time.time() * 1000  # not a message this code can read: do not count it as old
