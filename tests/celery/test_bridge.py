"""Celery producers (the real ``celery`` package) -> bridge -> Dramatiq workers -> Celery results."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from celery.exceptions import TaskRevokedError

from actors.celery_protocol import priority_key
from actors.celery_results import RESULT_KEY_PREFIX
from tests.celery.conftest import RESULT_TIMEOUT_S
from tests.fixtures_workers import ROOT, worker_env


def test_send_task_by_name(celery_app: Celery, start_worker: Callable[..., Any], start_bridge: Any) -> None:
    start_worker()
    start_bridge()
    result = celery_app.send_task("tasks.echo", args=[{"hello": "world"}])
    assert result.get(timeout=RESULT_TIMEOUT_S) == {"hello": "world"}
    assert result.status == "SUCCESS" and result.ready() and result.successful() and not result.failed()


def test_delay_through_stub_signature(
    celery_app: Celery, start_worker: Callable[..., Any], start_bridge: Any
) -> None:
    @celery_app.task(name="tasks.echo")
    def echo(payload: Any) -> Any:  # the producer's stub: never runs here
        raise AssertionError("a stub runs on the worker, not in the producer")

    @celery_app.task(name="tasks.test_add")
    def add(x: int, y: int, scale: int = 1) -> int:
        raise AssertionError("stub")

    start_worker()
    start_bridge()
    assert echo.delay({"hello": "world"}).get(timeout=RESULT_TIMEOUT_S) == {"hello": "world"}
    assert add.delay(2, 3, scale=10).get(timeout=RESULT_TIMEOUT_S) == 50
    assert add.apply_async(args=[1], kwargs={"y": 4}).get(timeout=RESULT_TIMEOUT_S) == 5


def test_priority_lists_are_served_lowest_step_first(
    celery_app: Celery, celery_queue: str, redis_url: str, start_worker: Callable[..., Any], start_bridge: Any
) -> None:
    key = f"celery-test:order:{uuid.uuid4().hex}"
    sent = [celery_app.send_task("tasks.test_record", args=[key, f"low-{i}"], priority=9) for i in range(2)]
    sent.append(celery_app.send_task("tasks.test_record", args=[key, "mid"], priority=4))
    sent.append(celery_app.send_task("tasks.test_record", args=[key, "high"], priority=0))
    client = redis.Redis.from_url(redis_url)
    # kombu's own layout: the bare list for step 0, `<queue>\x06\x16<step>` for the others.
    assert [client.llen(priority_key(celery_queue, s)) for s in (0, 3, 6, 9)] == [1, 1, 0, 2]
    start_bridge()
    start_worker(threads=1)
    for result in sent:
        result.get(timeout=RESULT_TIMEOUT_S)
    assert [v.decode() for v in client.lrange(key, 0, -1)] == ["high", "mid", "low-0", "low-1"]
    client.delete(key)


def test_countdown_runs_no_earlier(
    celery_app: Celery, redis_url: str, start_worker: Callable[..., Any], start_bridge: Any
) -> None:
    start_worker()
    start_bridge()
    key = f"celery-test:count:{uuid.uuid4().hex}"
    started = time.monotonic()
    result = celery_app.send_task("tasks.test_count", args=[key], countdown=2)
    time.sleep(1)
    client = redis.Redis.from_url(redis_url)
    assert client.get(key) is None and result.status == "PENDING"
    assert result.get(timeout=RESULT_TIMEOUT_S) == 1
    assert time.monotonic() - started >= 1.9
    client.delete(key)


def test_expired_before_dispatch_is_revoked(
    celery_app: Celery, redis_url: str, start_worker: Callable[..., Any], start_bridge: Any
) -> None:
    key = f"celery-test:count:{uuid.uuid4().hex}"
    result = celery_app.send_task(
        "tasks.test_count", args=[key], expires=datetime.now(UTC) - timedelta(seconds=1)
    )
    start_worker()
    start_bridge()
    with pytest.raises(TaskRevokedError, match="expired"):
        result.get(timeout=RESULT_TIMEOUT_S)
    assert result.status == "REVOKED" and result.ready()
    assert redis.Redis.from_url(redis_url).get(key) is None


def test_expires_while_waiting_for_its_eta(
    celery_app: Celery, redis_url: str, start_worker: Callable[..., Any], start_bridge: Any
) -> None:
    start_worker()
    start_bridge()
    key = f"celery-test:count:{uuid.uuid4().hex}"
    result = celery_app.send_task("tasks.test_count", args=[key], countdown=2, expires=1)
    with pytest.raises(TaskRevokedError):
        result.get(timeout=RESULT_TIMEOUT_S)
    assert result.status == "REVOKED"
    assert redis.Redis.from_url(redis_url).get(key) is None


def test_failure_reaches_the_producer_with_its_reason(
    celery_app: Celery, start_worker: Callable[..., Any], start_bridge: Any
) -> None:
    start_worker()
    start_bridge()
    result = celery_app.send_task("tasks.test_fail", args=["the disk is on fire"])
    with pytest.raises(ValueError, match="the disk is on fire"):
        result.get(timeout=RESULT_TIMEOUT_S)
    assert result.failed() and result.status == "FAILURE"
    assert "ValueError: the disk is on fire" in result.traceback


def test_ocr_of_a_missing_document_fails_with_the_pipeline_reason(
    celery_app: Celery, start_worker: Callable[..., Any], start_bridge: Any
) -> None:
    start_worker()
    start_bridge()
    missing = str(uuid.uuid4())
    result = celery_app.send_task("tasks.ocr_document", kwargs={"document_id": missing}, queue=None)
    with pytest.raises(Exception, match=f"no document with id {missing}") as raised:
        result.get(timeout=RESULT_TIMEOUT_S)
    assert type(raised.value).__name__ == "NotFoundError"
    assert result.failed()


class _Tripwire:
    """Unpickling this creates a file: proof that nobody loaded the pickle."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> Any:
        return (Path.touch, (self.path,))


def test_pickle_is_refused_and_never_loaded(
    make_celery: Callable[..., Celery], tmp_path: Path, start_worker: Callable[..., Any], start_bridge: Any
) -> None:
    pickler = make_celery(task_serializer="pickle", accept_content=["json", "pickle"])
    tripwire = tmp_path / "unpickled"
    pickle.dumps(_Tripwire(tripwire))  # picklable, so the producer really sends it
    start_worker()
    start_bridge()
    result = pickler.send_task("tasks.echo", args=[_Tripwire(tripwire)])
    with pytest.raises(
        Exception, match="application/x-python-serialize.*refused.*pickle is never loaded"
    ) as raised:
        result.get(timeout=RESULT_TIMEOUT_S)
    assert type(raised.value).__name__ == "RefusedMessage" and result.failed()
    assert not tripwire.exists()
    # The bridge is still running.
    assert (
        make_celery().send_task("tasks.echo", args=["still here"]).get(timeout=RESULT_TIMEOUT_S)
        == "still here"
    )


def test_unknown_task_is_refused(
    celery_app: Celery, start_worker: Callable[..., Any], start_bridge: Any
) -> None:
    start_worker()
    start_bridge()
    result = celery_app.send_task("tasks.does_not_exist", kwargs={"x": 1})
    with pytest.raises(Exception, match="unknown task 'tasks.does_not_exist'"):
        result.get(timeout=RESULT_TIMEOUT_S)
    assert result.failed()
    assert celery_app.send_task("tasks.echo", args=[1]).get(timeout=RESULT_TIMEOUT_S) == 1


def test_canvas_callbacks_are_refused(
    celery_app: Celery, start_worker: Callable[..., Any], start_bridge: Any
) -> None:
    @celery_app.task(name="tasks.echo")
    def echo(payload: Any) -> Any:
        raise AssertionError("stub")

    start_worker()
    start_bridge()
    result = echo.apply_async(args=[1], link=echo.s())
    with pytest.raises(Exception, match="canvas fields \\(callbacks\\)"):
        result.get(timeout=RESULT_TIMEOUT_S)


def test_malformed_messages_are_refused_without_stopping_the_bridge(
    celery_app: Celery, celery_queue: str, redis_url: str, start_worker: Callable[..., Any], start_bridge: Any
) -> None:
    start_worker()
    bridge = start_bridge()
    client = redis.Redis.from_url(redis_url)
    bad_id = str(uuid.uuid4())
    envelope = {
        "body": "bm90IGpzb24=",
        "content-type": "application/json",
        "content-encoding": "utf-8",
        "headers": {"task": "tasks.echo", "id": bad_id},
        "properties": {"body_encoding": "base64"},
    }
    client.lpush(celery_queue, b"\x80not json at all", json.dumps(envelope))
    assert celery_app.send_task("tasks.echo", args=["after"]).get(timeout=RESULT_TIMEOUT_S) == "after"
    bad = celery_app.AsyncResult(bad_id)
    with pytest.raises(Exception, match="not valid base64 JSON"):
        bad.get(timeout=RESULT_TIMEOUT_S)
    assert client.lrange(bridge.unreadable, 0, -1) == [b"\x80not json at all"]
    assert client.llen(bridge.processing) == 0


def test_results_go_to_celery_result_backend_in_another_database(
    make_celery: Callable[..., Celery],
    redis_url: str,
    pipeline_settings: Any,
    start_bridge: Any,
    tmp_path: Path,
) -> None:
    results_url = redis_url.rsplit("/", 1)[0] + "/5"
    app = make_celery(backend=results_url)
    # A worker started the way the Procfile starts it, with CELERY_RESULT_BACKEND in its environment.
    with (tmp_path / "worker.log").open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "dramatiq", "actors.broker:setup_broker", "actors.llm",
             "--queues", pipeline_settings.default_queue, "--processes", "1", "--threads", "1"],
            cwd=ROOT, env=worker_env(pipeline_settings, CELERY_RESULT_BACKEND=results_url),
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        start_bridge(results_url=results_url)
        ok = app.send_task("tasks.echo", args=[{"db": 5}])
        refused = app.send_task("tasks.nope")
        assert ok.get(timeout=RESULT_TIMEOUT_S) == {"db": 5}
        with pytest.raises(Exception, match="unknown task"):
            refused.get(timeout=RESULT_TIMEOUT_S)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(60)
    other, main = redis.Redis.from_url(results_url), redis.Redis.from_url(redis_url)
    for task_id in (ok.id, refused.id):
        assert other.exists(RESULT_KEY_PREFIX + task_id) and not main.exists(RESULT_KEY_PREFIX + task_id)
        other.delete(RESULT_KEY_PREFIX + task_id)


def test_celery_queue_alone_bridges_only_that_queue(broker: Any, make_settings: Callable[..., Any]) -> None:
    from actors.celery import default_queues

    # The seed's RunPod worker: CELERY_QUEUE=ocr takes OCR work only.
    assert default_queues(make_settings(celery_queue="ocr")) == ["ocr"]
    assert default_queues(make_settings(celery_default_queue="default")) == ["ocr", "default"]
    assert default_queues(make_settings()) == ["ocr", "default"]
