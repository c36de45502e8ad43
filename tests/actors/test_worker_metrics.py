"""Dramatiq's Prometheus middleware on a ``dramatiq`` CLI worker: scrape what it processed."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
from dramatiq.brokers.redis import RedisBroker
from prometheus_client.parser import text_string_to_metric_families

from pipeline.settings import Settings
from tests.fixtures_workers import ROOT, worker_env

# How long the test waits for the worker to process its messages, seconds.
WAIT_S = 60
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(port: int) -> Samples:
    """The worker's metrics, summed over labels other than queue_name, actor_name and le."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, frozenset((k, v) for k, v in s.labels.items() if k in ("actor_name", "queue_name", "le")))
            out[key] = out.get(key, 0.0) + s.value
    return out


def test_cli_worker_exports_dramatiq_metrics_on_its_port(
    broker: RedisBroker, pipeline_settings: Settings, tmp_path: Path
) -> None:
    from actors.llm import echo
    from actors.ocr import ocr_document

    broker.flush_all()
    port = free_port()
    env = worker_env(pipeline_settings)
    env.update(PAGEMILL_WORKER_METRICS_PORT=str(port), PAGEMILL_WORKER_METRICS_HOST="127.0.0.1")
    default, ocr = pipeline_settings.default_queue, pipeline_settings.ocr_queue
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dramatiq", "actors.broker:setup_broker", "actors.ocr", "actors.llm", "--queues", default, ocr,
             "--processes", "2", "--threads", "1"],
            cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            for n in range(5):
                echo.send(n)
            # Not in the job store: fails for good at once (NotFoundError is not retried).
            ocr_document.send(document_id=str(uuid.uuid4()))
            echo_labels = frozenset({("queue_name", default), ("actor_name", "tasks.echo")})
            ocr_labels = frozenset({("queue_name", ocr), ("actor_name", "tasks.ocr_document")})
            deadline = time.monotonic() + WAIT_S
            metrics: Samples = {}
            while (metrics.get(("dramatiq_messages_total", echo_labels)) != 5
                   or ("dramatiq_message_rejects_total", ocr_labels) not in metrics):  # fmt: skip
                assert proc.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, f"metrics never showed the work: {metrics}"
                time.sleep(0.2)
                try:
                    metrics = scrape(port)
                except httpx.TransportError:
                    continue  # the exposition fork is still starting
            assert metrics[("dramatiq_messages_total", ocr_labels)] == 1
            assert metrics[("dramatiq_message_errors_total", ocr_labels)] == 1
            assert metrics[("dramatiq_message_rejects_total", ocr_labels)] == 1  # dead-lettered
            assert metrics[("dramatiq_message_duration_milliseconds_count", echo_labels)] == 5
            assert metrics[("dramatiq_messages_inprogress", echo_labels)] == 0
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            assert proc.wait(timeout=60) == 0, log_path.read_text()
    # Each worker process wrote its own files, in this port's directory.
    directory = pipeline_settings.data_dir / "worker-metrics" / str(port)
    assert any(p.name.startswith("counter_") for p in directory.glob("*.db")), list(directory.iterdir())
