"""``pagemill serve``: the whole deployment on one machine, for a laptop.

The same process types as the Procfile (web, one worker per queue, clock), started as child
processes against embedded Redis/PostgreSQL when none is configured. Ctrl-C or SIGTERM stops
them all, then the embedded servers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pipeline.settings import Settings

# How long children get to finish their current work after SIGTERM, seconds.
STOP_TIMEOUT_S = 30


@dataclass(frozen=True, slots=True)
class ProcessType:
    """One line of the Procfile."""

    name: str
    argv: list[str]


def process_types(settings: Settings, *, host: str, port: int, ocr_processes: int, with_clock: bool) -> list[ProcessType]:
    """The processes ``serve`` runs, mirroring the Procfile."""
    py = sys.executable
    types = [
        ProcessType("web", [py, "-m", "uvicorn", "web.app:create_app", "--factory", "--host", host, "--port", str(port)]),
        ProcessType("ocr", [py, "-m", "dramatiq", "actors.broker:setup_broker", "actors.ocr", "--queues", settings.ocr_queue,
                            "--processes", str(ocr_processes), "--threads", "1"]),
        ProcessType("default", [py, "-m", "dramatiq", "actors.broker:setup_broker", "actors.llm", "actors.ocr", "actors.maintenance",
                                "--queues", settings.default_queue,
                                "--processes", "1", "--threads", "4"]),
    ]
    if with_clock:
        # periodiq is a package without __main__: run its console script from this venv.
        types.append(ProcessType("clock", [str(Path(py).parent / "periodiq"), "actors.broker:setup_broker", "actors.maintenance"]))
    types.append(ProcessType("bridge", [py, "-m", "pagemill.cli", "celery-bridge"]))
    return types


def child_env(settings: Settings) -> dict[str, str]:
    """The environment children need to reach the (maybe embedded) servers."""
    env = dict(os.environ)
    if settings.redis_url:
        env["REDIS_URL"] = settings.redis_url
    if settings.database_url is not None:
        env["DATABASE_URL"] = settings.database_url.get_secret_value()
    env["PAGEMILL_DATA_DIR"] = str(settings.data_dir)
    # One onnxruntime thread per OCR process, one page prefetched per thread: processes = cores.
    env.setdefault("PAGEMILL_OCR_THREADS", "1")
    env.setdefault("dramatiq_queue_prefetch", "1")
    # Dramatiq's consumer counts "busy" as "idle" and backs its poll off up to 1 s by default:
    # every finished page would wait that long for the next one. 100 ms polls are cheap.
    env.setdefault("dramatiq_worker_timeout", "100")
    env.setdefault("MALLOC_ARENA_MAX", "2")  # OCR buffers from executor threads: few glibc arenas
    return env


def run(settings: Settings, types: list[ProcessType], *, echo: object = print) -> int:
    """Start every process type, wait until one exits or we are told to stop, stop the rest."""
    env = child_env(settings)
    children: dict[str, subprocess.Popen[bytes]] = {}
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for t in types:
            children[t.name] = subprocess.Popen(t.argv, env=env, start_new_session=True)
            echo(f"started {t.name} (pid {children[t.name].pid})")  # type: ignore[operator]
        while not stopping:
            exited = [name for name, p in children.items() if p.poll() is not None]
            if exited:
                echo(f"{', '.join(exited)} exited; stopping the others")  # type: ignore[operator]
                break
            time.sleep(0.2)
    finally:
        for p in children.values():
            if p.poll() is None:
                # The leader only: dramatiq's main process forwards SIGTERM to its workers, and a
                # worker that gets a second SIGTERM calls sys.exit() mid-shutdown and hangs on its
                # non-daemon threads (dramatiq 2.2 cli.worker_process.termhandler).
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for p in children.values():
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        for s, handler in previous.items():
            signal.signal(s, handler)
    failed = [n for n, p in children.items() if p.returncode not in (0, -signal.SIGTERM)]
    return 1 if failed and not stopping else 0
