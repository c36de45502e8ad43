"""One stack for the whole security suite: the web app, a real worker process and a bridge.

Every hostile input goes through the SAME running app, ``dramatiq`` worker process and Celery
bridge, so the last tests can check that they are still up and that a good document completes.
The app runs with API keys set; clients from ``stack.client()`` send one.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from dramatiq.brokers.redis import RedisBroker

from actors.celery_protocol import PRIORITY_STEPS, priority_key
from pipeline.context import Context
from pipeline.jobs import Document
from pipeline.settings import Settings
from tests.fixtures_services import drop_schema
from tests.fixtures_workers import wait_for_document, worker_env
from tests.web.conftest import CLIENT_TIMEOUT_S, ServerThread
from web.app import create_app

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "security-suite-key"
# Small limits so the oversize cases cost little: bytes per upload, pages per document.
MAX_UPLOAD_BYTES = 4 * 1024 * 1024
MAX_PAGES = 50
# Retry backoff of the worker process, as the session broker's (ms).
FAST_RETRIES = {"PAGEMILL_MIN_BACKOFF_MS": "50", "PAGEMILL_MAX_BACKOFF_MS": "200"}
# How long a hostile document may take to reach a final state, seconds.
JOB_TIMEOUT_S = 120


@dataclass
class Stack:
    """The running pieces every security test talks to."""

    url: str
    settings: Settings
    worker: subprocess.Popen[bytes]
    worker_log: Path
    bridge: Any
    bridge_thread: threading.Thread
    celery_queue: str

    def client(self, *, key: str | None = API_KEY, **kwargs: Any) -> httpx.Client:
        """An httpx client for the app, sending ``key`` as the bearer token (none when None)."""
        headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
        return httpx.Client(base_url=self.url, timeout=CLIENT_TIMEOUT_S, headers=headers, **kwargs)

    def worker_alive(self) -> bool:
        return self.worker.poll() is None

    def wait(self, document_id: str) -> Document:
        """The document once it reaches a final state (fails at once if the worker died)."""

        async def run() -> Document:
            ctx = await Context.open(self.settings, migrate=False)
            try:
                return await wait_for_document(
                    ctx, uuid.UUID(document_id), timeout=JOB_TIMEOUT_S, alive=self.worker_alive
                )
            finally:
                await ctx.aclose()

        return asyncio.run(run())

    def sources(self) -> list[str]:
        """The uploaded files in storage (results written meanwhile by the worker left out)."""
        return [k for k in self.stored_keys() if k.rsplit("/", 1)[-1].startswith("source.")]

    def stored_keys(self) -> list[str]:
        """Every file under the local storage root, as storage keys."""
        root = self.settings.storage_dir
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture(scope="package")
def stack(
    broker: RedisBroker, broker_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """App (uvicorn thread) + ``dramatiq`` worker process + bridge thread on a schema of their own."""
    from actors.celery import Bridge  # needs the session broker first
    from tests.celery import _actors  # noqa: F401 - helper actors, as tests/celery declares them

    schema = f"t_sec_{uuid.uuid4().hex[:12]}"
    data_dir = tmp_path_factory.mktemp("security")
    base = broker_settings.model_dump() | {
        "db_schema": schema,
        "data_dir": data_dir / "data",
        "api_keys": API_KEY,
        "max_upload_bytes": MAX_UPLOAD_BYTES,
        "max_pages": MAX_PAGES,
    }
    settings = type(broker_settings)(**base)
    broker.flush_all()
    server = ServerThread(create_app(settings))
    server.start()  # migrates the schema before the worker starts
    log_path = data_dir / "worker.log"
    log_file = log_path.open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "dramatiq", "actors.broker:setup_broker", "actors.ocr", "actors.llm", "--queues", settings.ocr_queue,
         settings.default_queue, "--processes", "1", "--threads", "2"],
        cwd=ROOT, env=worker_env(settings) | FAST_RETRIES, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    queue = f"celery-sec-{uuid.uuid4().hex[:12]}"
    assert settings.results_url is not None
    bridge = Bridge(broker, queues=[queue], results_url=settings.results_url, name=f"sec-{uuid.uuid4().hex}")
    thread = threading.Thread(target=bridge.run, name="celery-bridge", daemon=True)
    thread.start()
    try:
        yield Stack(server.url, settings, worker, log_path, bridge, thread, queue)
    finally:
        bridge.stop()
        thread.join(10)
        client = redis.Redis.from_url(settings.redis_url or "")
        client.delete(bridge.processing, bridge.unreadable, *(priority_key(queue, s) for s in PRIORITY_STEPS))
        worker.terminate()
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        log_file.close()
        server.stop()
        broker.flush_all()
        drop_schema(settings.database_url.get_secret_value() if settings.database_url else "", schema)


@pytest.fixture
def api(stack: Stack) -> Iterator[httpx.Client]:
    """A client of the stack's app with a valid API key."""
    with stack.client() as client:
        yield client
