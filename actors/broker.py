"""Build the Dramatiq broker from settings, before any actor is declared.

Actor modules call :func:`setup_broker` at import time. Workers started by the ``dramatiq``
CLI read the environment; tests and the embedded mode call ``setup_broker(settings)`` first
with explicit settings, and the actor modules then bind to that broker.
"""

from __future__ import annotations

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import (
    AgeLimit,
    AsyncIO,
    Callbacks,
    CurrentMessage,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)
from periodiq import PeriodiqMiddleware
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from actors import runtime
from actors.celery_results import CeleryResults
from actors.middleware import LogContext, ProcessResources
from pipeline.errors import PagemillError
from pipeline.settings import Settings

# Dead-lettered messages are kept this long (ms): one week, like Dramatiq's default.
DEAD_MESSAGE_TTL_MS = 7 * 24 * 3600 * 1000
# Backoff between broker command retries while Redis is unreachable: first and longest, seconds.
REDIS_RETRY_FIRST_S, REDIS_RETRY_CAP_S = 0.25, 4.0

_broker: RedisBroker | None = None
_settings: Settings | None = None


def build_broker(settings: Settings) -> RedisBroker:
    """A Redis broker with pagemill's middleware stack (also needed on producers)."""
    if not settings.redis_url:
        raise PagemillError(
            "REDIS_URL (or CELERY_BROKER_URL) is not set: point it at Redis, or use `pagemill serve` / "
            "`pagemill ocr`, which start an embedded Redis"
        )
    middleware = [
        AsyncIO(),
        # After AsyncIO: "after" hooks run in reverse order, so ProcessResources closes the
        # pools and S3 clients at worker shutdown while AsyncIO's event loop still runs.
        ProcessResources(),
        CurrentMessage(),
        LogContext(),
        AgeLimit(),
        TimeLimit(time_limit=settings.task_soft_time_limit * 1000),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        # Before Retries: after-hooks run in reverse, so it sees whether Retries gave up.
        CeleryResults(),
        Retries(
            max_retries=settings.max_retries,
            min_backoff=settings.min_backoff_ms,
            max_backoff=settings.max_backoff_ms,
        ),
        # Accepts the `periodic` actor option; skips scheduled messages that waited too long.
        PeriodiqMiddleware(skip_delay=60),
    ]
    if settings.worker_metrics_port:
        # Imported only when asked for: dramatiq's prometheus module makes a /tmp directory on import.
        from actors.metrics import WorkerMetrics

        middleware.append(WorkerMetrics(settings))
    return RedisBroker(
        client=redis_client(settings),
        namespace=settings.redis_namespace,
        middleware=middleware,
        # A worker silent this long is dead: its unacked messages go back to the queue during
        # "maintenance", which runs on that fraction (per million) of broker commands.
        heartbeat_timeout=settings.redis_heartbeat_timeout_ms,
        maintenance_chance=settings.redis_maintenance_chance,
        dead_message_ttl=DEAD_MESSAGE_TTL_MS,
    )


def redis_client(settings: Settings) -> redis.Redis:
    """The broker's Redis client: commands retry through a short outage instead of failing.

    Without this a Redis restart fails whatever the worker sends at that moment, and Dramatiq
    then loses messages in ways no retry sees: the retry of a failed message cannot be enqueued
    while its original is acked once Redis is back, and a consumer that loses its connection
    drops the messages it had prefetched (they stay claimed by a live worker). A chaos test
    (tests/chaos/test_redis_restart.py) lost an aggregation message exactly so.
    """
    assert settings.redis_url
    retries, waited = 0, 0.0
    while waited < settings.redis_retry_s:
        waited += min(REDIS_RETRY_CAP_S, REDIS_RETRY_FIRST_S * 2**retries)
        retries += 1
    return redis.Redis.from_url(
        settings.redis_url,
        retry=Retry(ExponentialBackoff(cap=REDIS_RETRY_CAP_S, base=REDIS_RETRY_FIRST_S), retries),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
    )


def setup_broker(settings: Settings | None = None) -> RedisBroker:
    """Make the process's broker once; later calls return it (pass settings only the first time)."""
    global _broker, _settings
    if _broker is None:
        _settings = settings or Settings()
        _broker = build_broker(_settings)
        runtime.set_process_settings(_settings)
        dramatiq.set_broker(_broker)
    elif settings is not None and settings != _settings:
        raise RuntimeError("the broker is already set up with other settings; call setup_broker once per process")
    return _broker


def current_settings() -> Settings:
    """The settings the broker was built from."""
    if _settings is None:
        setup_broker()
    assert _settings is not None
    return _settings
