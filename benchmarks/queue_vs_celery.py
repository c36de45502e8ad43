"""Queue overhead: Celery vs pagemill's Dramatiq workers vs Celery producers through the bridge.

    python benchmarks/queue_vs_celery.py [--tasks 20000] [--redis-url redis://127.0.0.1:6379/0]

Three runs of no-op tasks on the same Redis and the same cores:

    a  Celery producer -> Celery prefork worker (concurrency = cores)
    b  Dramatiq producer -> pagemill's Dramatiq workers (processes = cores, all pagemill middleware)
    c  Celery producer -> `pagemill celery-bridge` -> the same Dramatiq workers as b

Each run first enqueues every task (enqueue rate, workers stopped), then starts the consumers and
times the first to the last task *run* (processing rate), so process start-up is not counted.
Every task does the same one Redis call (a counter that stamps the first and last run with Redis
TIME), so all three pay the same work. No results are stored: producers set ignore_result, as
fire-and-forget no-op producers do. Prints a table and writes benchmarks/results/queue_vs_celery.json.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import click
import redis
from celery import Celery

from pipeline.settings import ExplicitSettings, Settings

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "queue_vs_celery.json"
TASK = "bench.noop"
# Dramatiq worker threads per process (the Procfile's default-queue setting).
DRAMATIQ_THREADS = 8
# Longest a run may take to drain, seconds.
DRAIN_TIMEOUT_S = 600
# How long consumers get to stop after SIGTERM, seconds.
STOP_TIMEOUT_S = 30
# How often the driver looks at the counter, seconds.
POLL_S = 0.05

# KEYS: counter, first, last; ARGV: total. Stamps the first and last run with the server's clock.
_TICK_LUA = """
local n = redis.call('INCR', KEYS[1])
if n == 1 or n == tonumber(ARGV[1]) then
  local t = redis.call('TIME')
  redis.call('SET', n == 1 and KEYS[2] or KEYS[3], t[1] .. '.' .. string.format('%06d', t[2]))
end
return n
"""

# REDIS_URL, else the local server (never Celery's amqp:// default: RabbitMQ may run here too).
REDIS_URL = Settings().redis_url or "redis://127.0.0.1:6379/0"
_client = redis.Redis.from_url(REDIS_URL)
_tick_script = _client.register_script(_TICK_LUA)

# The producer and worker app of run a (and the producer of c): json, no result backend.
celery_app = Celery("bench", broker=REDIS_URL)
celery_app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)


def tick(key: str, total: int) -> None:
    """The no-op task body: one counter call; returns nothing (Dramatiq logs a warning per value)."""
    _tick_script(keys=[key, f"{key}:first", f"{key}:last"], args=[total])


celery_app.task(name=TASK)(tick)


def declare_actor() -> Any:
    """The Dramatiq no-op actor, on pagemill's broker (call after setup_broker)."""
    import dramatiq

    import actors.celery  # noqa: F401 - the Celery results middleware, as on every pagemill worker
    from actors.broker import current_settings

    return dramatiq.actor(tick, actor_name=TASK, queue_name=current_settings().default_queue, max_retries=0)


if __name__ != "__main__":  # imported by the workers and the bridge: the driver sets their environment
    from actors.broker import setup_broker

    setup_broker()
    noop = declare_actor()


def _env(redis_url: str, namespace: str, queue: str) -> dict[str, str]:
    return {
        **os.environ,
        "REDIS_URL": redis_url,
        "PAGEMILL_REDIS_NAMESPACE": namespace,
        "CELERY_DEFAULT_QUEUE": queue,
        "PAGEMILL_LOG_LEVEL": "WARNING",
        "PAGEMILL_LOG_FORMAT": "json",
        "PYTHONPATH": str(REPO),
    }


def _start(argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    # SIGTERM to the parent only: dramatiq and celery pass it on to their children themselves.
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _drain(client: redis.Redis, key: str, total: int, procs: list[subprocess.Popen[bytes]]) -> float:
    """Wait until every task ran; the processing rate from first to last run, tasks/s."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while int(client.get(key) or 0) < total:
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            raise RuntimeError(
                f"{key}: {int(client.get(key) or 0)}/{total} ran; a consumer died or it is stuck"
            )
        time.sleep(POLL_S)
    first, last = (float(client.get(f"{key}:{end}")) for end in ("first", "last"))
    return total / max(last - first, 1e-9)


def _celery_enqueue(queue: str, key: str, total: int) -> float:
    started = time.perf_counter()
    with celery_app.producer_or_acquire() as producer:
        for _ in range(total):
            celery_app.send_task(TASK, args=[key, total], queue=queue, producer=producer)
    return total / (time.perf_counter() - started)


def _dramatiq_workers(env: dict[str, str], cores: int) -> subprocess.Popen[bytes]:
    return _start(
        [
            sys.executable,
            "-m",
            "dramatiq",
            "benchmarks.queue_vs_celery",
            "--processes",
            str(cores),
            "--threads",
            str(DRAMATIQ_THREADS),
            "--queues",
            env["CELERY_DEFAULT_QUEUE"],
        ],
        env,
    )


def run_celery(redis_url: str, run: str, total: int, cores: int, rep: int) -> dict[str, float]:
    """a: Celery producer -> Celery prefork worker."""
    queue, key = f"{run}-celery", f"{run}:a{rep}"
    enqueue = _celery_enqueue(queue, key, total)
    worker = _start(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "benchmarks.queue_vs_celery:celery_app",
            "worker",
            "-Q",
            queue,
            "-c",
            str(cores),
            "-P",
            "prefork",
            "-l",
            "warning",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
        ],
        _env(redis_url, run, queue),
    )
    try:
        process = _drain(_client, key, total, [worker])
    finally:
        _stop([worker])
    return {"enqueue_per_s": enqueue, "process_per_s": process}


def run_dramatiq(redis_url: str, run: str, total: int, cores: int, rep: int) -> dict[str, float]:
    """b: Dramatiq producer -> pagemill's Dramatiq workers."""
    from actors.broker import setup_broker

    queue, key = f"{run}-dramatiq", f"{run}:b{rep}"
    broker = setup_broker(
        ExplicitSettings(redis_url=redis_url, redis_namespace=run, celery_default_queue=queue)
    )
    noop = broker.actors.get(TASK) or declare_actor()  # declared once per driver process
    started = time.perf_counter()
    for _ in range(total):
        noop.send(key, total)
    enqueue = total / (time.perf_counter() - started)
    workers = _dramatiq_workers(_env(redis_url, run, queue), cores)
    try:
        process = _drain(_client, key, total, [workers])
    finally:
        _stop([workers])
        broker.flush(queue)
    return {"enqueue_per_s": enqueue, "process_per_s": process}


def run_bridge(redis_url: str, run: str, total: int, cores: int, rep: int) -> dict[str, float]:
    """c: Celery producer -> pagemill celery-bridge -> pagemill's Dramatiq workers."""
    celery_queue, queue, key = f"{run}-bridge", f"{run}-bridged", f"{run}:c{rep}"
    enqueue = _celery_enqueue(celery_queue, key, total)
    env = _env(redis_url, run, queue)
    procs = [
        _start(
            [
                sys.executable,
                "-m",
                "pagemill.cli",
                "celery-bridge",
                "--queues",
                celery_queue,
                "--name",
                run,
                "--import",
                "benchmarks.queue_vs_celery",
            ],
            env,
        ),
        _dramatiq_workers(env, cores),
    ]
    try:
        process = _drain(_client, key, total, procs)
    finally:
        _stop(procs)
    return {"enqueue_per_s": enqueue, "process_per_s": process}


RUNS = {"a_celery": run_celery, "b_dramatiq": run_dramatiq, "c_celery_via_bridge": run_bridge}


@click.command()
@click.option("--tasks", "total", default=20_000, show_default=True)
@click.option(
    "--cores", default=os.cpu_count() or 1, show_default=True, help="Celery concurrency = Dramatiq processes."
)
@click.option("--repeat", default=1, show_default=True, help="Rounds of a, b, c; the table shows medians.")
def main(total: int, cores: int, repeat: int) -> None:
    """Run a, b and c on the same Redis and print the table."""
    run = f"bench-{uuid.uuid4().hex[:8]}"
    rounds: list[dict[str, dict[str, float]]] = []
    try:
        for rep in range(repeat):
            # Rounds interleave a, b and c so that load from other processes hits all three alike.
            rounds.append(
                {
                    name: {**fn(REDIS_URL, run, total, cores, rep), "load1": os.getloadavg()[0]}
                    for name, fn in RUNS.items()
                }
            )
    finally:
        leftovers = [*_client.scan_iter(f"{run}:*"), *_client.scan_iter(f"pagemill:celery-bridge:{run}:*")]
        if leftovers:  # counters, heartbeats, the bridge's empty lists
            _client.delete(*leftovers)
    rows = {
        name: {m: statistics.median(r[name][m] for r in rounds) for m in ("enqueue_per_s", "process_per_s")}
        for name in RUNS
    }
    a = rows["a_celery"]["process_per_s"]
    ratios = {
        "b/a": rows["b_dramatiq"]["process_per_s"] / a,
        "c/a": rows["c_celery_via_bridge"]["process_per_s"] / a,
    }
    print(f"{total} no-op tasks, {cores} cores, median of {repeat} round(s)")
    print(f"{'run':<22}{'enqueue msg/s':>15}{'process msg/s':>15}")
    for name, row in rows.items():
        print(f"{name:<22}{row['enqueue_per_s']:>15,.0f}{row['process_per_s']:>15,.0f}")
    print("  ".join(f"{k} = {v:.2f}" for k, v in ratios.items()) + "   (targets: b/a >= 4, c/a >= 2)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    summary = {
        "tasks": total,
        "cores": cores,
        "median": rows,
        "ratios": ratios,
        "rounds": rounds,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    RESULTS.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
