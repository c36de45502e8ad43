"""Dead letters: a message that fails for good is listed with its reason, replayed, purged.

The ``pagemill dlq`` commands run as real processes pointed at the session broker's Redis
namespace, as an operator would run them beside the workers.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dramatiq
import pytest
from dramatiq import Worker
from dramatiq.brokers.redis import RedisBroker

from actors.deadletters import DeadLetter, list_dead_letters, purge_dead_letters, replay_all
from pipeline.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
QUEUE = "dlq-test"
# How long a test waits for a message to die or to run, seconds.
WAIT_S = 30


class Flaky:
    """A test-only actor's switch and what it has done."""

    def __init__(self) -> None:
        self.broken = True
        self.done: list[str] = []
        self.actor: dramatiq.Actor[..., None] | None = None


_flaky = Flaky()


@pytest.fixture
def flaky(broker: RedisBroker) -> Iterator[Flaky]:
    """An actor on the session broker that fails while ``broken`` and records its runs after."""
    if _flaky.actor is None:  # declared once: the session broker outlives this fixture

        @dramatiq.actor(broker=broker, actor_name="tests.flaky", queue_name=QUEUE, max_retries=1)
        def flaky_actor(key: str) -> None:
            if _flaky.broken:
                raise ValueError(f"flaky is broken for {key}")
            _flaky.done.append(key)

        _flaky.actor = flaky_actor
    _flaky.broken = True
    _flaky.done.clear()
    yield _flaky
    purge_dead_letters(broker, queue=QUEUE)


def _wait_for(check: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + WAIT_S
    while not (value := check()):
        assert time.monotonic() < deadline, f"still waiting after {WAIT_S}s"
        time.sleep(0.05)
    return value


def _dead(broker: RedisBroker, n: int) -> list[DeadLetter]:
    def enough() -> list[DeadLetter] | None:
        letters = list_dead_letters(broker, queue=QUEUE)
        return letters if len(letters) >= n else None

    letters: list[DeadLetter] = _wait_for(enough)
    return letters


def _pagemill(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    assert settings.redis_url and settings.database_url
    env = {k: v for k, v in os.environ.items() if k not in ("CELERY_BROKER_URL",)}
    env.update(
        REDIS_URL=settings.redis_url,
        PAGEMILL_REDIS_NAMESPACE=settings.redis_namespace,
        DATABASE_URL=settings.database_url.get_secret_value(),
        PAGEMILL_DATA_DIR=str(settings.data_dir),
        PYTHONPATH=str(ROOT),
    )
    return subprocess.run(
        [sys.executable, "-m", "pagemill.cli", "dlq", *args],
        check=False, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_failed_message_is_listed_with_its_reason_and_replay_runs_it(
    broker: RedisBroker, start_worker: Callable[..., Worker], pipeline_settings: Settings, flaky: Flaky
) -> None:
    assert flaky.actor is not None
    start_worker()
    sent = flaky.actor.send("doc-1")
    [letter] = _dead(broker, 1)
    assert letter.message_id == sent.message_id
    assert letter.actor_name == "tests.flaky"
    assert letter.kwargs == {} and letter.args == ("doc-1",)
    assert letter.reason == "ValueError: flaky is broken for doc-1"

    listed = _pagemill(pipeline_settings, "list", "--queue", QUEUE)
    assert listed.returncode == 0, listed.stderr[-3000:]
    [line] = listed.stdout.splitlines()
    assert sent.message_id in line and QUEUE in line and "ValueError: flaky is broken for doc-1" in line

    shown = _pagemill(pipeline_settings, "show", sent.message_id)
    assert shown.returncode == 0, shown.stderr[-3000:]
    assert "Traceback (most recent call last):" in shown.stdout
    assert 'raise ValueError(f"flaky is broken for {key}")' in shown.stdout
    assert "reason:     ValueError: flaky is broken for doc-1" in shown.stdout

    flaky.broken = False
    replayed = _pagemill(pipeline_settings, "replay", sent.message_id)
    assert replayed.returncode == 0, replayed.stderr[-3000:]
    assert replayed.stdout.split() == ["replayed", sent.message_id, QUEUE, "tests.flaky"]
    _wait_for(lambda: flaky.done == ["doc-1"])
    assert list_dead_letters(broker, queue=QUEUE) == []

    missing = _pagemill(pipeline_settings, "show", sent.message_id)
    assert missing.returncode == 1
    assert "no dead-lettered message" in missing.stderr


def test_replay_all_and_purge(
    broker: RedisBroker, start_worker: Callable[..., Worker], pipeline_settings: Settings, flaky: Flaky
) -> None:
    assert flaky.actor is not None
    start_worker()
    for key in ("a", "b", "c"):
        flaky.actor.send(key)
    letters = _dead(broker, 3)
    assert sorted(letter.reason for letter in letters) == [
        f"ValueError: flaky is broken for {k}" for k in "abc"
    ]

    # Still broken: a replay goes through its retries again and dies again, reason intact.
    assert len(replay_all(broker, queue=QUEUE)) == 3
    assert len(_dead(broker, 3)) == 3

    purged = _pagemill(pipeline_settings, "purge", "--queue", QUEUE, "--yes")
    assert purged.returncode == 0, purged.stderr[-3000:]
    assert purged.stdout.strip() == "purged 3 dead letter(s)"
    assert list_dead_letters(broker, queue=QUEUE) == []
    assert flaky.done == []
