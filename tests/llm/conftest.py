from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from pipeline.settings import Settings
from tests.llm.chat_server import ChatServer


@pytest.fixture
def chat_server() -> Iterator[ChatServer]:
    """A Chat Completions stand-in on a free port, for one test."""
    server = ChatServer().start()
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
        }
    )
