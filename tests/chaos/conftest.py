"""Fixtures of the chaos tests: CLI workers that are stopped whatever happens."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from dramatiq.brokers.redis import RedisBroker

from pipeline.settings import Settings
from tests.chaos.harness import CliWorker, worker_env


@pytest.fixture
def cli_workers(broker: RedisBroker, tmp_path: Path) -> Iterator[Callable[..., CliWorker]]:
    """Start ``dramatiq`` CLI workers for a test's settings; every one is stopped at the end."""
    started: list[CliWorker] = []
    broker.flush_all()

    def start(settings: Settings, *, env: dict[str, str] | None = None, **options: Any) -> CliWorker:
        log_path = tmp_path / f"worker-{len(started) + 1}.log"
        worker = CliWorker(worker_env(settings, **(env or {})), log_path, queue=settings.ocr_queue, **options)
        started.append(worker)
        return worker.start()

    yield start
    for worker in started:
        worker.stop()
    broker.flush_all()
