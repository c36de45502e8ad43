"""The bridge killed with SIGKILL after BLMOVE, before dispatch: a restart runs the message once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

from pipeline.settings import Settings
from tests.celery.conftest import RESULT_TIMEOUT_S

REPO = Path(__file__).resolve().parents[2]
# How long the stopped bridge gets for Redis to serve its pending BLMOVE, seconds.
SETTLE_S = 0.3


@pytest.fixture
def bridge_process(
    broker_settings: Settings, celery_queue: str
) -> Iterator[Callable[[str], subprocess.Popen[bytes]]]:
    """Start `pagemill celery-bridge` as a real process on the session broker's namespace."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(name: str) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "REDIS_URL": broker_settings.redis_url or "",
            "PAGEMILL_REDIS_NAMESPACE": broker_settings.redis_namespace,
            "PAGEMILL_LOG_FORMAT": "json",
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "pagemill.cli", "celery-bridge", "--queues", celery_queue, "--name", name,
             "--import", "tests.celery._actors"],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.terminate()
            proc.wait(10)


def _wait_started(proc: subprocess.Popen[bytes]) -> None:
    assert proc.stderr is not None
    for line in proc.stderr:  # JSON log lines; the bridge logs once it is about to take messages
        if b"celery_bridge.started" in line:
            time.sleep(0.2)  # into its first BLMOVE
            return
    raise AssertionError(f"the bridge exited with {proc.wait()}")


def test_kill_9_between_blmove_and_dispatch_runs_once(
    celery_app: Celery,
    celery_queue: str,
    redis_url: str,
    test_actors: Any,
    start_worker: Callable[..., Any],
    bridge_process: Callable[[str], subprocess.Popen[bytes]],
) -> None:
    client = redis.Redis.from_url(redis_url)
    name = uuid.uuid4().hex
    processing = f"pagemill:celery-bridge:{name}:processing"
    key = f"celery-test:count:{uuid.uuid4().hex}"
    first = bridge_process(name)
    _wait_started(first)
    # Freeze the bridge while it blocks in BLMOVE: Redis still moves the message into the processing
    # list and answers into the socket of a process that never reads it. Retry if it was elsewhere.
    for _ in range(20):
        os.kill(first.pid, signal.SIGSTOP)
        result = celery_app.send_task("tasks.test_count", args=[key])
        time.sleep(SETTLE_S)
        if client.llen(processing) == 1:
            break
        client.delete(celery_queue)
        os.kill(first.pid, signal.SIGCONT)
        time.sleep(0.05)
    else:
        pytest.fail("never caught the bridge inside BLMOVE")
    os.kill(first.pid, signal.SIGKILL)
    first.wait(10)
    assert client.llen(celery_queue) == 0 and client.llen(processing) == 1

    start_worker()
    time.sleep(0.5)
    assert client.get(key) is None  # nothing was dispatched before the kill
    second = bridge_process(name)
    _wait_started(second)
    assert result.get(timeout=RESULT_TIMEOUT_S) == 1
    time.sleep(1)  # a duplicate would have run by now
    assert int(client.get(key) or 0) == 1
    assert client.llen(processing) == 0
    client.delete(key, processing)
