"""The client through the real ``openai`` package against the local Chat Completions stand-in."""

from __future__ import annotations

import time
from typing import Any

import pytest

from pipeline.llm.chunking import PageText, chunk_pages, estimate_tokens
from pipeline.llm.client import LlmClient
from pipeline.llm.errors import LlmAnswerError, LlmConfigError, LlmUnavailableError
from pipeline.llm.products import generate
from pipeline.llm.schemas import Flashcards, Quiz, Summary
from tests.llm.chat_server import ChatServer


def _client(server: ChatServer, **options: Any) -> LlmClient:
    return LlmClient(api_key="k", model="test-model", base_url=server.base_url, **({"timeout_s": 10.0} | options))


async def _complete(client: LlmClient, schema: Any = Summary) -> Any:
    try:
        return await client.complete(schema, system="s", user="[page 3]\ntext")
    finally:
        await client.aclose()


@pytest.mark.anyio
async def test_structured_answer_is_validated_and_counted(chat_server: ChatServer) -> None:
    done = await _complete(_client(chat_server), Quiz)
    assert isinstance(done.value, Quiz) and len(done.value.questions[0].options) == 4
    assert done.value.questions[0].source_page == 3
    sent = chat_server.requests[0]["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["strict"] is True
    reported = chat_server.usage[0]
    assert (done.usage.prompt_tokens, done.usage.completion_tokens, done.usage.calls) == (
        reported["prompt_tokens"], reported["completion_tokens"], 1
    )  # fmt: skip


@pytest.mark.anyio
async def test_malformed_answer_is_retried_once_with_the_error(chat_server: ChatServer) -> None:
    chat_server.modes = ["malformed"]
    done = await _complete(_client(chat_server))
    assert done.usage.calls == 2
    assert done.usage.total_tokens == sum(u["total_tokens"] for u in chat_server.usage)
    correction = chat_server.requests[1]["messages"][-1]["content"]
    assert "invalid" in correction and "JSON" in correction


@pytest.mark.anyio
async def test_two_malformed_answers_fail_with_a_reason(chat_server: ChatServer) -> None:
    chat_server.modes = ["malformed", "malformed"]
    with pytest.raises(LlmAnswerError, match="no valid summary after a corrective retry"):
        await _complete(_client(chat_server))


@pytest.mark.anyio
async def test_rate_limit_waits_for_retry_after(chat_server: ChatServer) -> None:
    chat_server.modes = ["429"]
    started = time.monotonic()
    done = await _complete(_client(chat_server, max_retries=2))
    assert time.monotonic() - started >= 0.9  # Retry-After: 1
    assert len(chat_server.requests) == 2 and done.usage.calls == 1


@pytest.mark.anyio
async def test_rate_limit_after_retries_is_transient(chat_server: ChatServer) -> None:
    chat_server.modes = ["429", "429"]
    with pytest.raises(LlmUnavailableError) as caught:
        await _complete(_client(chat_server, max_retries=1))
    assert caught.value.retryable


@pytest.mark.anyio
async def test_slow_answer_times_out(chat_server: ChatServer) -> None:
    chat_server.modes = ["slow"]
    chat_server.slow_s = 2.0
    with pytest.raises(LlmUnavailableError, match="unavailable"):
        await _complete(_client(chat_server, timeout_s=0.5, max_retries=0))


def test_missing_api_key_is_a_clear_error() -> None:
    with pytest.raises(LlmConfigError, match="OPENAI_API_KEY is not set"):
        LlmClient(api_key=None, model="m")


def test_chunks_fit_the_budget_and_keep_page_numbers() -> None:
    pages = [PageText(n, f"line {n} " * 40) for n in range(1, 8)] + [PageText(8, "long line\n" * 300)]
    chunks = chunk_pages(pages, budget_tokens=200)
    assert all(c.tokens <= 200 for c in chunks)
    assert sorted({n for c in chunks for n in c.pages}) == list(range(1, 9))
    assert all(f"[page {c.pages[0]}]" in c.text for c in chunks)
    assert sum(1 for c in chunks if c.pages == (8,)) > 1  # the long page is split, still page 8
    assert estimate_tokens("abcd" * 10) == 10


@pytest.mark.anyio
async def test_map_reduce_bounds_concurrency_and_keeps_pages(chat_server: ChatServer) -> None:
    pages = [PageText(n, f"Topic {n}. " + "words " * 150) for n in range(1, 7)]
    chat_server.modes = ["slow"] * 6
    chat_server.slow_s = 0.3

    client = _client(chat_server, concurrency=2)
    try:
        cards = await generate(client, "flashcards", pages, budget_tokens=300)
        summary = await generate(client, "summary", pages, budget_tokens=300)
    finally:
        await client.aclose()
    assert chat_server.max_active == 2
    deck = Flashcards.model_validate(cards.data)
    assert sorted({c.source_page for c in deck.cards}) == list(range(1, 7))
    assert cards.pages == tuple(range(1, 7)) and cards.usage.calls == 6
    assert Summary.model_validate(summary.data).source_pages == list(range(1, 7))
    assert summary.usage.calls > 6  # map calls plus merge calls
