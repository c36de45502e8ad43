"""Servers the chaos tests own and break: a private redis-server, a TCP proxy that can be cut."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A redis-server of the test's own (never the machine's), AOF on, in its own directory."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed (scripts/bootstrap installs it)"
        self.binary = binary

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5)

    def start(self, timeout: float = 20) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        with (self.dir / "redis.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
                 "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--protected-mode", "no"],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.client().ping()
                return
            except redis.ConnectionError:
                assert self.proc.poll() is None, (self.dir / "redis.log").read_text()[-2000:]
                assert time.monotonic() < deadline, f"redis-server did not answer within {timeout}s"
                time.sleep(0.05)

    def shutdown(self) -> None:
        """SHUTDOWN (the AOF is flushed first), as ``systemctl restart redis`` would."""
        with contextlib.suppress(redis.ConnectionError):
            self.client().shutdown()
        assert self.proc is not None
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


class TcpProxy:
    """A TCP forwarder to ``target`` in a thread of its own; ``cut()`` severs the network.

    While cut, every open connection is reset and new ones are accepted and reset at once,
    which is what a client sees when a database fails over or a firewall drops it. While
    paused, nothing moves (bytes are held, new connections wait), as in a network stall.
    """

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.cut_now = False
        self.refused = 0  # connections reset while cut
        self.held = 0  # reads held back while paused
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._pipes: set[asyncio.StreamWriter] = set()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> TcpProxy:
        self._thread.start()
        assert self._ready.wait(10), "the proxy did not start"
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._flowing = asyncio.Event()
        self._flowing.set()
        server = self._loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()
        self._loop.run_until_complete(server.wait_closed())

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut_now:
            self.refused += 1
            writer.transport.abort()
            return
        try:
            await self._flowing.wait()
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except (OSError, asyncio.CancelledError):
            writer.transport.abort()
            return
        self._pipes.update((writer, up_writer))
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if not self._flowing.is_set():
                    self.held += 1
                    await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            self._pipes.discard(writer)
            writer.transport.abort()

    def cut(self) -> int:
        """Reset every connection and refuse new ones; returns how many were open."""

        def sever() -> int:
            self.cut_now = True
            pipes = list(self._pipes)
            for writer in pipes:
                writer.transport.abort()
            return len(pipes) // 2

        return asyncio.run_coroutine_threadsafe(_call(sever), self._loop).result(10)

    def restore(self) -> None:
        self.cut_now = False

    def pause(self) -> None:
        """Stop moving bytes, on open connections and new ones, until ``resume()``."""
        self._loop.call_soon_threadsafe(self._flowing.clear)

    def resume(self) -> None:
        self._loop.call_soon_threadsafe(self._flowing.set)

    def stop(self) -> None:
        self.resume()
        self.cut()
        asyncio.run_coroutine_threadsafe(self._cancel_all(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _cancel_all(self) -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _call(func: Callable[[], Any]) -> Any:
    return func()
