"""Actors the Celery bridge tests call by name (declared on the session broker, default queue)."""

from __future__ import annotations

import functools

import dramatiq
import redis

from actors import runtime
from actors.broker import DEFAULT as QUEUE


@functools.cache
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)


def _redis() -> redis.Redis:
    url = runtime.settings().redis_url
    assert url is not None
    return _client(url)


@dramatiq.actor(actor_name="tasks.test_count", queue_name=QUEUE, max_retries=0)
def count(key: str) -> int:
    """Count the runs of a message under ``key``."""
    return int(_redis().incr(key))


@dramatiq.actor(actor_name="tasks.test_record", queue_name=QUEUE, max_retries=0)
def record(key: str, value: str) -> None:
    """Append ``value`` to the list ``key``: the order in which messages ran."""
    _redis().rpush(key, value)


@dramatiq.actor(actor_name="tasks.test_add", queue_name=QUEUE, max_retries=0)
def add(x: int, y: int, *, scale: int = 1) -> int:
    """Positional and keyword arguments."""
    return (x + y) * scale


@dramatiq.actor(actor_name="tasks.test_fail", queue_name=QUEUE, max_retries=1, min_backoff=10, max_backoff=20)
def fail(reason: str) -> None:
    """Always fails with ``reason``, after one retry."""
    raise ValueError(reason)
