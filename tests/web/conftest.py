"""A real uvicorn server per test, in a thread, on a free port; a real httpx client talks to it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from dramatiq.brokers.redis import RedisBroker

from pipeline.settings import Settings
from web.app import create_app

# How long the server may take to run its lifespan (connect, migrate), seconds.
STARTUP_TIMEOUT_S = 30
# Client timeout for ordinary requests, seconds.
CLIENT_TIMEOUT_S = 30


class ServerThread:
    """uvicorn.Server running ``app`` in a daemon thread (httpx's ``serve_in_thread`` pattern)."""

    def __init__(self, app: Any) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=5
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not self.server.started:
            if not self.thread.is_alive():
                raise AssertionError("the web server exited during startup (see the log above)")
            if time.monotonic() > deadline:
                raise AssertionError(f"the web server did not start within {STARTUP_TIMEOUT_S}s")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()


@pytest.fixture
def web_settings(broker: RedisBroker, pipeline_settings: Settings) -> Callable[..., Settings]:
    """Settings for the app: the test's schema and data dir, the session's broker, plus overrides."""

    def make(**overrides: Any) -> Settings:
        # Re-validated (not model_copy) so overrides such as api_keys="a,b" are parsed.
        return type(pipeline_settings)(**(pipeline_settings.model_dump() | overrides))

    return make


@pytest.fixture
def serve(web_settings: Callable[..., Settings]) -> Iterator[Callable[..., str]]:
    """Start the app with settings overrides; returns its base URL. Stopped after the test."""
    servers: list[ServerThread] = []

    def start(**overrides: Any) -> str:
        server = ServerThread(create_app(web_settings(**overrides)))
        server.start()
        servers.append(server)
        return server.url

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def api(serve: Callable[..., str]) -> Iterator[httpx.Client]:
    """A client for an app with default test settings."""
    with httpx.Client(base_url=serve(), timeout=CLIENT_TIMEOUT_S) as client:
        yield client
