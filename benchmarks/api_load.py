"""API load: N concurrent clients upload a small PDF, then read document status, over real HTTP.

The web app runs as its own process (``uvicorn --factory web.app:create_app``, one worker) on
the machine's Redis and PostgreSQL, in a schema and Redis namespace of its own that are removed
afterwards. No OCR worker runs: an upload streams the file to local storage, checks that pdfium
can open it, inserts the row and enqueues ``tasks.ocr_document``. Prints a table and writes
benchmarks/results/api_load.json (p50/p95/p99 latency and requests/s per phase).

    .venv/bin/python benchmarks/api_load.py --clients 8 --uploads 400 --status 2000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import redis

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SAMPLE = ROOT / "pagemill" / "samples" / "sample.pdf"
# How long the server may take to start, seconds.
STARTUP_TIMEOUT_S = 30
# Requests sent before measuring, so pools and caches are warm.
WARMUP_REQUESTS = 10


@dataclass(frozen=True, slots=True)
class Phase:
    """Latencies (seconds) and wall time of one phase."""

    name: str
    latencies: list[float]
    errors: int
    wall_s: float

    def summary(self) -> dict[str, float | int | str]:
        ordered = sorted(self.latencies)
        cuts = statistics.quantiles(ordered, n=100, method="inclusive") if len(ordered) > 1 else ordered * 99
        return {
            "phase": self.name,
            "requests": len(ordered),
            "errors": self.errors,
            "p50_ms": round(cuts[49] * 1000, 2),
            "p95_ms": round(cuts[94] * 1000, 2),
            "p99_ms": round(cuts[98] * 1000, 2),
            "max_ms": round(ordered[-1] * 1000, 2),
            "requests_per_s": round(len(ordered) / self.wall_s, 1),
        }


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    """The web app in its own process; returns once /healthz answers."""
    cmd = [sys.executable, "-m", "uvicorn", "web.app:create_app", "--factory", "--host", "127.0.0.1",
           "--port", str(port), "--log-level", "warning", "--no-access-log"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the web server exited with {proc.returncode} during startup")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.terminate()
    raise SystemExit(f"the web server did not answer within {STARTUP_TIMEOUT_S}s")


async def run_phase(name: str, total: int, clients: int, request: Callable[[int], Awaitable[bool]]) -> Phase:
    """``total`` requests spread over ``clients`` concurrent workers."""
    latencies: list[float] = []
    errors = 0
    remaining = iter(range(total))

    async def client_loop() -> None:
        nonlocal errors
        for i in remaining:
            started = time.perf_counter()
            ok = await request(i)
            latencies.append(time.perf_counter() - started)
            errors += 0 if ok else 1

    started = time.perf_counter()
    await asyncio.gather(*(client_loop() for _ in range(clients)))
    return Phase(name, latencies, errors, time.perf_counter() - started)


async def load(base_url: str, args: argparse.Namespace, pdf: bytes) -> list[Phase]:
    """Warm up, then the upload phase, then the status phase."""
    ids: list[str] = []
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as client:

        async def upload(_: int) -> bool:
            response = await client.post(
                "/api/documents", files={"file": ("sample.pdf", pdf, "application/pdf")}
            )
            if response.status_code == 202:
                ids.append(response.json()["id"])
            return response.status_code == 202

        async def status(i: int) -> bool:
            response = await client.get(f"/api/documents/{ids[i % len(ids)]}/status")
            return response.status_code == 200

        for i in range(WARMUP_REQUESTS):
            await upload(i)
            await status(i)
        uploads = await run_phase("upload", args.uploads, args.clients, upload)
        statuses = await run_phase("status", args.status, args.clients, status)
    return [uploads, statuses]


async def cleanup_database(dsn: str, schema: str) -> None:
    """Drop the benchmark's schema."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def main() -> None:
    """Run the benchmark, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--uploads", type=int, default=400, help="upload requests in all")
    parser.add_argument("--status", type=int, default=2000, help="status requests in all")
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--out", type=Path, default=RESULTS / "api_load.json")
    args = parser.parse_args()

    tag = uuid.uuid4().hex[:10]
    schema, namespace = f"bench_{tag}", f"pagemill-bench-{tag}"
    data_dir = Path(tempfile.mkdtemp(prefix="pagemill-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAGEMILL_", "S3_", "CELERY_"))}
    env.update({
        "DATABASE_URL": args.database_url, "REDIS_URL": args.redis_url, "PAGEMILL_DB_SCHEMA": schema,
        "PAGEMILL_REDIS_NAMESPACE": namespace, "PAGEMILL_DATA_DIR": str(data_dir),
        "PAGEMILL_LOG_LEVEL": "WARNING",
    })  # fmt: skip
    pdf = SAMPLE.read_bytes()
    port = free_port()
    proc = start_server(env, port)
    try:
        phases = asyncio.run(load(f"http://127.0.0.1:{port}", args, pdf))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        asyncio.run(cleanup_database(args.database_url, schema))
        client = redis.Redis.from_url(args.redis_url)
        keys = list(client.scan_iter(match=f"{namespace}:*"))
        if keys:
            client.delete(*keys)
        shutil.rmtree(data_dir, ignore_errors=True)

    rows = [phase.summary() for phase in phases]
    print(
        f"{'phase':<8} {'requests':>8} {'errors':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'req/s':>8}"
    )
    for r in rows:
        print(f"{r['phase']:<8} {r['requests']:>8} {r['errors']:>6} {r['p50_ms']:>8} {r['p95_ms']:>8} "
              f"{r['p99_ms']:>8} {r['requests_per_s']:>8}")  # fmt: skip
    report = {
        "benchmark": "api_load",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "clients": args.clients,
        "pdf_bytes": len(pdf),
        "server": "uvicorn, 1 process, web.app:create_app, local-directory storage, no OCR worker",
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "phases": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
