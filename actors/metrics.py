"""Dramatiq's Prometheus middleware on ``dramatiq`` CLI workers, served on a port from settings.

``dramatiq.middleware.prometheus.Prometheus`` counts messages, errors, retries, dead letters,
messages in progress and processing time per queue and actor. Each worker process writes its
values to prometheus_client's multiprocess files; one fork of the CLI's main process serves
them all. Upstream takes the port and directory from ``dramatiq_prom_*`` variables read at
import; here they come from settings, because two worker commands on one host (the Procfile's
``ocr`` and ``default``) need a port and a directory each.

Only processes started by the ``dramatiq`` command emit ``process_boot``. The web app, the
clock, the Celery bridge and in-process workers (tests, ``pagemill ocr``) build the same broker
but never boot it; there every hook does nothing, so they neither fail on counters that were
never made nor open a port.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import structlog
from dramatiq import Broker, Message, Worker
from dramatiq.broker import MessageProxy
from dramatiq.middleware import prometheus

from pipeline.settings import Settings

log = structlog.get_logger(__name__)

# prometheus_client names its files <kind>_<pid>.db.
_PID_FILE = re.compile(r"_(\d+)\.db$")


class WorkerMetrics(prometheus.Prometheus):
    """Dramatiq's Prometheus middleware, active only in processes the ``dramatiq`` CLI booted."""

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.directory = settings.worker_metrics_dir
        self.booted = False

    @property
    def forks(self) -> list[Any]:
        """The exposition server, run by the CLI's main process as a fork."""
        return [serve_worker_metrics]

    def after_process_boot(self, broker: Broker) -> None:
        """Make the counters, writing to this port's multiprocess directory."""
        self.directory.mkdir(parents=True, exist_ok=True)
        # A file with this process's pid is a previous run's (pids repeat across container restarts).
        for stale in self.directory.glob(f"*_{os.getpid()}.db"):
            stale.unlink(missing_ok=True)
        # Upstream's hooks read the directory from this module global.
        prometheus.DB_PATH = str(self.directory)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = prometheus.DB_PATH
        # Values made from now on go to files, even if prometheus_client was imported earlier.
        from prometheus_client import values

        values.ValueClass = values.get_value_class()
        super().after_process_boot(broker)
        self.booted = True

    def after_worker_shutdown(self, broker: Broker, worker: Worker) -> None:
        if self.booted:
            super().after_worker_shutdown(broker, worker)

    def after_nack(self, broker: Broker, message: MessageProxy) -> None:
        if self.booted:
            super().after_nack(broker, message)

    def after_enqueue(self, broker: Broker, message: Message[Any], delay: int) -> None:
        if self.booted:
            super().after_enqueue(broker, message, delay)

    def before_delay_message(self, broker: Broker, message: MessageProxy) -> None:
        if self.booted:
            super().before_delay_message(broker, message)

    def before_process_message(self, broker: Broker, message: MessageProxy) -> None:
        if self.booted:
            super().before_process_message(broker, message)

    def after_process_message(
        self, broker: Broker, message: MessageProxy, *, result: Any = None, exception: BaseException | None = None
    ) -> None:
        if self.booted:
            super().after_process_message(broker, message, result=result, exception=exception)

    after_skip_message = after_process_message


def serve_worker_metrics() -> int:
    """Serve the workers' metrics over HTTP until the CLI stops (runs in a fork of its main process)."""
    from pipeline.logs import setup_logging

    settings = Settings()
    setup_logging(level=settings.log_level, fmt=settings.log_format)
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    directory = settings.worker_metrics_dir
    directory.mkdir(parents=True, exist_ok=True)
    _drop_dead_processes(directory)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    try:
        _server, thread = start_http_server(
            settings.worker_metrics_port, addr=settings.worker_metrics_host, registry=registry
        )
    except OSError as exc:
        log.error(
            "worker_metrics.port_unavailable",
            host=settings.worker_metrics_host,
            port=settings.worker_metrics_port,
            error=str(exc),
            fix="give each dramatiq command on this host its own PAGEMILL_WORKER_METRICS_PORT",
        )
        return 1
    log.info("worker_metrics.serving", host=settings.worker_metrics_host, port=settings.worker_metrics_port)
    thread.join()
    return 0


def _drop_dead_processes(directory: Path) -> None:
    # Files of processes from earlier runs: their counters would add to this run's forever.
    for path in directory.glob("*.db"):
        match = _PID_FILE.search(path.name)
        if match is None:
            continue
        try:
            os.kill(int(match.group(1)), 0)
        except ProcessLookupError:
            path.unlink(missing_ok=True)
        except PermissionError:
            pass  # alive, someone else's
