from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from dramatiq.brokers.redis import RedisBroker
from pydantic import SecretStr

from pipeline.settings import Settings
from tests.llm.chat_server import ChatServer
from tests.llm.receiver import Receiver

# Key the tests sign and verify callbacks with.
CALLBACK_SECRET = "test-callback-secret"


@pytest.fixture
def chat_server() -> Iterator[ChatServer]:
    """A Chat Completions stand-in on a free port, for one test."""
    server = ChatServer().start()
    yield server
    server.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on a free port, for one test."""
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture
def llm_settings(pipeline_settings: Settings, chat_server: ChatServer) -> Settings:
    """Per-test settings pointing the openai client at the stand-in."""
    return pipeline_settings.model_copy(
        update={
            "openai_base_url": chat_server.base_url,
            "openai_api_key": SecretStr("test-key"),
            "openai_model": "test-model",
            "llm_context_tokens": 300,
            "llm_timeout_s": 10.0,
            "callback_secret": SecretStr(CALLBACK_SECRET),
        }
    )


@pytest.fixture
def web_client(broker: RedisBroker) -> Iterator[Callable[[Settings], httpx.Client]]:
    """Start the real app (uvicorn in a thread) with these settings; returns a client for it.

    Needs the session broker first: the app would otherwise set up the process's broker itself.
    """
    from tests.web.conftest import CLIENT_TIMEOUT_S, ServerThread
    from web.app import create_app

    opened: list[tuple[ServerThread, httpx.Client]] = []

    def start(settings: Settings) -> httpx.Client:
        server = ServerThread(create_app(settings))
        server.start()
        client = httpx.Client(base_url=server.url, timeout=CLIENT_TIMEOUT_S)
        opened.append((server, client))
        return client

    yield start
    for server, client in opened:
        client.close()
        server.stop()
