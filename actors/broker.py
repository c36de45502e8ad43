"""The Dramatiq broker: built from settings by the setup callable every worker command line names.

``dramatiq actors.broker:setup_broker actors.ocr ...`` (and ``periodiq actors.broker:setup_broker
actors.maintenance``) runs :func:`setup_broker` before importing the actor modules. Actor modules
only declare: each actor names a queue *role* (:data:`OCR` or :data:`DEFAULT`) and the
:class:`Placement` middleware puts it on the configured queue (CELERY_OCR_QUEUE,
CELERY_DEFAULT_QUEUE) with its configured time limit as it is declared. Queue names and time
limits are read here and nowhere else.

A module imported before any setup binds to :class:`Declarations`, a placeholder that connects
nowhere and refuses to send or run anything; :func:`setup_broker` moves its actors onto the real
broker. Tests and embedded mode call ``setup_broker(settings)`` with their own settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import dramatiq
import dramatiq.broker
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import (
    AgeLimit,
    AsyncIO,
    Callbacks,
    CurrentMessage,
    Middleware,
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

# Queue roles actors declare; Placement maps them to the configured queue names.
OCR, DEFAULT = "ocr", "default"
# Dead-lettered messages are kept this long (ms): one week, like Dramatiq's default.
DEAD_MESSAGE_TTL_MS = 7 * 24 * 3600 * 1000
# Backoff between broker command retries while Redis is unreachable: first and longest, seconds.
REDIS_RETRY_FIRST_S, REDIS_RETRY_CAP_S = 0.25, 4.0

M = TypeVar("M", bound=Middleware)
NO_BROKER = (
    "no Dramatiq broker is set up in this process: name the setup callable first on the command line "
    "(`dramatiq actors.broker:setup_broker actors.ocr ...`, `periodiq actors.broker:setup_broker actors.maintenance`) "
    "or call actors.broker.setup_broker(settings)"
)


class Placement(Middleware):
    """Put each actor on the queue configured for its role, with its configured time limit."""

    def __init__(self, *, queues: Mapping[str, str], time_limits_ms: Mapping[str, int]) -> None:
        self.queues = dict(queues)
        self.time_limits_ms = dict(time_limits_ms)
        self.roles: dict[str, str] = {}  # actor name -> the role it declared

    def before_declare_actor(self, broker: dramatiq.Broker, actor: dramatiq.Actor[Any, Any]) -> None:
        role = self.roles.setdefault(actor.actor_name, actor.queue_name)
        actor.queue_name = self.queues.get(role, role)
        if actor.actor_name in self.time_limits_ms:
            actor.options["time_limit"] = self.time_limits_ms[actor.actor_name]


def placement(settings: Settings) -> Placement:
    """Where actors go under these settings: the one place queue names and time limits are read."""
    return Placement(
        queues={OCR: settings.ocr_queue, DEFAULT: settings.default_queue},
        time_limits_ms={"tasks.ocr_page": settings.page_time_limit * 1000},
    )


class _RefuseWork(Middleware):
    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        # SystemExit: Dramatiq logs and swallows an Exception raised by middleware.
        raise SystemExit(NO_BROKER)


class Declarations(StubBroker):
    """Holds the actors declared before a broker was set up; sends and runs nothing."""

    def __init__(self) -> None:
        super().__init__(
            middleware=[
                _RefuseWork(), AgeLimit(), TimeLimit(), ShutdownNotifications(), Callbacks(), Pipelines(), Retries(),
                PeriodiqMiddleware(),
            ]
        )  # fmt: skip

    def enqueue(self, message: dramatiq.Message[Any], *, delay: int | None = None) -> dramatiq.Message[Any]:
        raise RuntimeError(NO_BROKER)


def hold_declarations() -> None:
    """Give actor modules imported before any setup a placeholder to declare on (``actors/__init__``)."""
    if dramatiq.broker.global_broker is None:
        dramatiq.set_broker(Declarations())


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
        ProcessResources(runtime.state, settings),
        placement(settings),
        CurrentMessage(),
        LogContext(),
        AgeLimit(),
        TimeLimit(time_limit=settings.task_soft_time_limit * 1000),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        # Before Retries: after-hooks run in reverse, so it sees whether Retries gave up.
        CeleryResults(results_url=settings.results_url),
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


def _find(broker: dramatiq.Broker, kind: type[M]) -> M | None:
    return next((m for m in broker.middleware if isinstance(m, kind)), None)


def broker_settings(broker: dramatiq.Broker) -> Settings | None:
    """The settings a pagemill broker was built from (None for any other broker)."""
    resources = _find(broker, ProcessResources)
    return resources.settings if resources is not None else None


def _same_broker(a: Settings, b: Settings) -> bool:
    """Whether a broker built from ``a`` is the one ``b`` asks for (the settings build_broker reads)."""
    fields = (
        "redis_url", "redis_namespace", "ocr_queue", "default_queue", "page_time_limit", "task_soft_time_limit",
        "max_retries", "min_backoff_ms", "max_backoff_ms", "worker_metrics_port", "redis_heartbeat_timeout_ms",
        "redis_maintenance_chance", "redis_retry_s", "results_url",
    )  # fmt: skip
    return all(getattr(a, f) == getattr(b, f) for f in fields)


def setup_broker(settings: Settings | None = None) -> RedisBroker:
    """Set up this process's broker (the setup callable of every worker command line).

    Without settings: the pagemill broker already set up, else one from the environment. With
    settings: the current broker when it was built the same way, else a new one. Actors declared
    on the previous broker (or on the placeholder) move onto the new one.
    """
    current = dramatiq.broker.global_broker
    built_from = broker_settings(current) if current is not None else None
    if (
        isinstance(current, RedisBroker)
        and built_from is not None
        and (settings is None or _same_broker(built_from, settings))
    ):
        return current
    broker = build_broker(settings or Settings())
    dramatiq.set_broker(broker)
    if current is not None:
        old = _find(current, Placement)
        for actor in list(current.actors.values()):
            actor.queue_name = old.roles.get(actor.actor_name, actor.queue_name) if old else actor.queue_name
            actor.broker = broker
            broker.declare_actor(actor)
    return broker


def current_settings() -> Settings:
    """The settings the process's broker was built from (set up from the environment if none is)."""
    settings = broker_settings(setup_broker())
    assert settings is not None
    return settings
