"""A Celery producer app, a queue of its own and an in-process bridge for each test."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
import redis
from celery import Celery
from dramatiq.brokers.redis import RedisBroker

from actors.celery_protocol import PRIORITY_STEPS, priority_key
from pipeline.settings import Settings
from tests.web.conftest import serve, web_settings  # noqa: F401 - the cancel test talks to the real web app

if TYPE_CHECKING:
    from actors.celery import Bridge

# How long a test waits for a Celery result, seconds.
RESULT_TIMEOUT_S = 20


@pytest.fixture
def celery_queue(redis_url: str) -> Iterator[str]:
    """A Celery queue name no other test (or developer) uses; its lists are deleted afterwards."""
    name = f"celery-test-{uuid.uuid4().hex[:12]}"
    yield name
    client = redis.Redis.from_url(redis_url)
    client.delete(*(priority_key(name, step) for step in PRIORITY_STEPS))


@pytest.fixture
def make_celery(redis_url: str, celery_queue: str) -> Iterator[Callable[..., Celery]]:
    """An unmodified Celery client app as the seeds configure it (json, Redis broker and results)."""
    apps: list[Celery] = []

    def make(backend: str | None = None, **conf: Any) -> Celery:
        app = Celery(f"producer-{len(apps)}", broker=redis_url, backend=backend or redis_url)
        settings = {
            "task_default_queue": celery_queue,
            "task_serializer": "json",
            "result_serializer": "json",
            "accept_content": ["json"],
            "broker_connection_retry_on_startup": False,
        }
        app.conf.update({**settings, **conf})
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()


@pytest.fixture
def celery_app(make_celery: Callable[..., Celery]) -> Celery:
    """A producer app with results in the broker's Redis database."""
    return make_celery()


@pytest.fixture
def test_actors(broker: RedisBroker) -> Any:
    """The helper actors of tests/celery/_actors.py, declared on the session broker."""
    from tests.celery import _actors

    return _actors


@pytest.fixture
def start_bridge(
    broker: RedisBroker, pipeline_settings: Settings, celery_queue: str, test_actors: Any
) -> Iterator[Callable[..., Bridge]]:
    """Run a bridge on the test's queue in a thread (stopped and cleaned up afterwards)."""
    from actors.celery import Bridge  # after the session broker exists: importing it needs one

    running: list[tuple[Bridge, threading.Thread]] = []

    def start(results_url: str | None = None, name: str | None = None) -> Bridge:
        url = results_url or pipeline_settings.results_url
        assert url is not None
        bridge = Bridge(broker, queues=[celery_queue], results_url=url, name=name or uuid.uuid4().hex)
        thread = threading.Thread(target=bridge.run, name="celery-bridge", daemon=True)
        thread.start()
        running.append((bridge, thread))
        return bridge

    yield start
    for bridge, thread in running:
        bridge.stop()
        thread.join(10)
        broker.client.delete(bridge.processing, bridge.unreadable)
