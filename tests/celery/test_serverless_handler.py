"""The RunPod handler runs a task in this process and answers ok/error, never raising."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from dramatiq.brokers.redis import RedisBroker

from pipeline.settings import Settings


@pytest.fixture
def handler(broker: RedisBroker, pipeline_settings: Settings) -> Iterator[Any]:
    """The seed's entry point, imported by its top-level name, on this test's schema and storage."""
    from actors import runtime
    from serverless_handler import handler as entry

    runtime.use_settings(pipeline_settings)
    yield entry
    runtime.use_settings(None)


def test_success(handler: Any) -> None:
    assert handler({"input": {"task": "tasks.echo", "payload": {"hello": "world"}}}) == {
        "status": "ok", "result": {"hello": "world"},
    }  # fmt: skip


def test_failure_carries_the_reason(handler: Any) -> None:
    missing = str(uuid.uuid4())
    answer = handler({"input": {"task": "tasks.ocr_document", "payload": {"document_id": missing}}})
    assert answer == {"status": "error", "error": f"no document with id {missing}"}
    answer = handler({"input": {"task": "tasks.ocr_document", "payload": {}}})
    assert answer == {"status": "error", "error": "tasks.ocr_document needs document_id or storage_key"}


def test_unknown_task_is_an_error_not_an_exception(handler: Any) -> None:
    assert handler({"input": {"task": "tasks.nope", "payload": {}}}) == {
        "status": "error", "error": "unknown task 'tasks.nope'",
    }  # fmt: skip
    assert handler({"no": "input"})["status"] == "error"
