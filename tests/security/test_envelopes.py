"""Hostile Celery messages pushed onto the running bridge's queue: each is refused with a Celery
FAILURE result that says why (or, with no task id to answer, kept in the bridge's unreadable
list); a task that reaches the worker with hostile arguments fails with a readable reason."""

from __future__ import annotations

import base64
import json
import pickle
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import redis

from actors.celery_results import RESULT_KEY_PREFIX
from tests.security._http import LEAKS
from tests.security.conftest import Stack

# How long the bridge (and for dispatched tasks, the worker) may take to answer, seconds.
ANSWER_TIMEOUT_S = 30


def envelope(
    task: str = "tasks.echo",
    args: Any = (),
    kwargs: Any = None,
    *,
    task_id: str | None = None,
    body: Any = None,
    content_type: str = "application/json",
    headers: dict[str, Any] | None = None,
    properties: dict[str, Any] | None = None,
    embed: Any = None,
    top: dict[str, Any] | None = None,
) -> tuple[str, bytes]:
    """A kombu Redis envelope as Celery 5 writes it, with any field replaced; (task id, raw)."""
    task_id = str(uuid.uuid4()) if task_id is None else task_id
    if body is None:
        payload = [list(args), kwargs if kwargs is not None else {}, embed or {}]
        body = base64.b64encode(json.dumps(payload).encode()).decode()
    raw = {
        "body": body,
        "content-encoding": "utf-8",
        "content-type": content_type,
        "headers": {"lang": "py", "task": task, "id": task_id, "root_id": task_id, "retries": 0}
        | (headers or {}),
        "properties": {
            "correlation_id": task_id,
            "body_encoding": "base64",
            "delivery_info": {"exchange": "", "routing_key": "x"},
            "priority": 0,
            "delivery_tag": str(uuid.uuid4()),
        }
        | (properties or {}),
    } | (top or {})
    return task_id, json.dumps(raw).encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class _Gadget:
    def __reduce__(self) -> tuple[Callable[..., Any], tuple[str]]:
        return (print, ("unpickled!",))


def _push(stack: Stack, raw: bytes) -> redis.Redis:
    client = redis.Redis.from_url(stack.settings.redis_url or "")
    client.lpush(stack.celery_queue, raw)
    return client


def _result(client: redis.Redis, task_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + ANSWER_TIMEOUT_S
    while time.monotonic() < deadline:
        raw = client.get(RESULT_KEY_PREFIX + task_id)
        if raw is not None:
            meta = json.loads(raw)
            if meta["status"] not in ("PENDING", "RETRY", "STARTED"):
                return meta  # type: ignore[no-any-return]
        time.sleep(0.05)
    raise AssertionError(f"no Celery result for {task_id} within {ANSWER_TIMEOUT_S}s")


def _assert_failure(meta: dict[str, Any], phrase: str) -> str:
    assert meta["status"] == "FAILURE", str(meta)[:500]
    message = " ".join(str(m) for m in meta["result"]["exc_message"])
    assert len(message) > 10 and not any(leak in message for leak in LEAKS), message
    assert phrase.lower() in message.lower(), f"{phrase!r} not in {message!r}"
    return message


# Messages with a task id: the bridge answers with a FAILURE naming the problem.
REFUSED: dict[str, tuple[Callable[[], tuple[str, bytes]], str]] = {
    "pickle-body": (
        lambda: envelope(
            content_type="application/x-python-serialize", body=_b64(pickle.dumps(([_Gadget()], {}, {})))
        ),
        "pickle is never loaded",
    ),
    "yaml-body": (
        lambda: envelope(content_type="application/x-yaml", body=_b64(b"!!python/object:os.system")),
        "refused",
    ),
    "no-content-type": (lambda: envelope(top={"content-type": None}), "refused"),
    "unknown-task": (lambda: envelope("tasks.rm_rf"), "unknown task"),
    "task-name-10k-chars": (lambda: envelope("t" * 10_000), "unknown task"),
    "wrong-base64": (lambda: envelope(body="%%%not base64%%%"), "base64"),
    "body-not-a-string": (lambda: envelope(body={"args": []}), "not a string"),
    "base64-of-binary": (lambda: envelope(body=_b64(b"\xff\xfe\x00\x81")), "base64"),
    "base64-of-non-json": (lambda: envelope(body=_b64(b"[1, 2,")), "JSON"),
    "body-not-a-triple": (lambda: envelope(body=_b64(b"[[], {}]")), "args, kwargs, embed"),
    "body-a-string": (lambda: envelope(body=_b64(b'"hello"')), "args, kwargs, embed"),
    "kwargs-a-list": (lambda: envelope(body=_b64(b"[[], [], {}]")), "kwargs"),
    "body-deeply-nested": (lambda: envelope(body=_b64(b"[" * 100_000 + b"]" * 100_000)), "nests too deeply"),
    "unknown-body-encoding": (lambda: envelope(properties={"body_encoding": "rot13"}), "body_encoding"),
    "unknown-content-encoding": (lambda: envelope(top={"content-encoding": "klingon"}), "encoding"),
    "compressed-body": (lambda: envelope(headers={"compression": "application/x-gzip"}), "compressed"),
    "eta-not-a-date": (lambda: envelope(headers={"eta": "tomorrow-ish"}), "eta"),
    "eta-in-year-9999": (lambda: envelope(headers={"eta": "9999-12-31T23:59:59+00:00"}), "eta"),
    "expires-not-a-date": (lambda: envelope(headers={"expires": ["never"]}), "expires"),
    "timelimit-infinite": (lambda: envelope(headers={"timelimit": [1e400, None]}), "timelimit"),
    "chord-canvas": (lambda: envelope(embed={"chord": {"task": "tasks.echo"}}), "canvas"),
    "huge-16mb-kwargs": (lambda: envelope(kwargs={"blob": "A" * 16 * 1024 * 1024}), "bytes"),
}


@pytest.mark.parametrize(("build", "phrase"), REFUSED.values(), ids=REFUSED.keys())
def test_bad_envelope_gets_a_failure_that_says_why(
    stack: Stack, build: Callable[[], tuple[str, bytes]], phrase: str
) -> None:
    task_id, raw = build()
    client = _push(stack, raw)
    _assert_failure(_result(client, task_id), phrase)
    assert stack.bridge_thread.is_alive()


# Messages the bridge cannot answer (no task id, not an envelope): kept for operators.
UNREADABLE: dict[str, bytes] = {
    "not-json": b"\x80\x04\x95 a pickle, not JSON",
    "empty": b"",
    "json-array": b"[1, 2, 3]",
    "json-string": b'"tasks.echo"',
    "no-body": json.dumps({"headers": {"task": "tasks.echo"}}).encode(),
    "headers-not-an-object": json.dumps({"body": "", "headers": "tasks.echo"}).encode(),
    "no-task-id": envelope(task_id="", properties={"correlation_id": None})[1],
    "deeply-nested-json": b'{"body": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "nan-and-infinity": b'{"body": NaN, "headers": {"id": Infinity}}',
}


@pytest.mark.parametrize("raw", UNREADABLE.values(), ids=UNREADABLE.keys())
def test_unreadable_message_is_kept_aside(stack: Stack, raw: bytes) -> None:
    client = _push(stack, raw)
    deadline = time.monotonic() + ANSWER_TIMEOUT_S
    while raw not in client.lrange(stack.bridge.unreadable, 0, -1):
        assert time.monotonic() < deadline, "the message never reached the unreadable list"
        time.sleep(0.05)
    assert stack.bridge_thread.is_alive()


# Well-formed messages whose arguments are hostile: the worker runs them and fails readably.
HOSTILE_CALLS: dict[str, tuple[str, dict[str, Any], str]] = {
    "ocr-document-id-sql": ("tasks.ocr_document", {"document_id": "1' OR '1'='1"}, "ids are UUIDs"),
    "ocr-document-unknown-id": ("tasks.ocr_document", {"document_id": str(uuid.uuid4())}, "no document"),
    "ocr-storage-key-traversal": ("tasks.ocr_document", {"storage_key": "../../etc/passwd"}, "'..'"),
    "ocr-storage-key-absolute": ("tasks.ocr_document", {"storage_key": "/etc/passwd"}, "absolute"),
    "ocr-storage-key-nul": ("tasks.ocr_document", {"storage_key": "documents/a\x00b"}, "NUL"),
    "ocr-storage-key-missing": (
        "tasks.ocr_pdf_document",
        {"storage_key": "documents/nothing/here.pdf"},
        "nothing is stored",
    ),
    "ocr-no-arguments": ("tasks.ocr_document", {}, "document_id or storage_key"),
    "ocr-page-no-not-a-number": (
        "tasks.ocr_page",
        {"document_id": str(uuid.uuid4()), "page_no": "abc"},
        "page",
    ),
    "ocr-unexpected-kwarg-type": ("tasks.ocr_document", {"document_id": ["a", "list"]}, "UUID"),
}


@pytest.mark.parametrize(("task", "kwargs", "phrase"), HOSTILE_CALLS.values(), ids=HOSTILE_CALLS.keys())
def test_hostile_arguments_fail_with_a_reason(
    stack: Stack, task: str, kwargs: dict[str, Any], phrase: str
) -> None:
    task_id, raw = envelope(task, kwargs=kwargs)
    client = _push(stack, raw)
    _assert_failure(_result(client, task_id), phrase)
    assert stack.worker_alive() and stack.bridge_thread.is_alive()
