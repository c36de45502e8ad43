"""The same hostile files, but put straight into storage and named by a Celery producer
(``tasks.ocr_document(storage_key=...)``): no upload check runs, so the worker process is the
one that must refuse each with a readable reason, both in the Celery result and on the document."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from pipeline.documents import document_id_for_message
from pipeline.errors import NotFoundError
from pipeline.jobs import DocumentStatus
from tests.fixtures_async import OpenContext
from tests.security._http import LEAKS
from tests.security.conftest import Stack
from tests.security.test_envelopes import _assert_failure, _push, _result, envelope
from tests.security.test_files import FILES, Refused

pytestmark = pytest.mark.anyio

REFUSED_FILES = [
    (name, build, expected) for name, build, _, expected in FILES if isinstance(expected, Refused)
]


@pytest.mark.parametrize(
    ("build", "expected"), [c[1:] for c in REFUSED_FILES], ids=[c[0] for c in REFUSED_FILES]
)
async def test_bad_stored_file_fails_in_the_worker_with_a_reason(
    stack: Stack, build: Callable[[], bytes], expected: Refused, open_context: OpenContext
) -> None:
    task_id = str(uuid.uuid4())
    doc_id = document_id_for_message(task_id)  # the id the worker gives such a document
    key = f"documents/{doc_id}/source.bin"

    ctx = await open_context(stack.settings, migrate=False)
    await ctx.storage.put_bytes(key, build())
    _, raw = envelope("tasks.ocr_document", kwargs={"storage_key": key}, task_id=task_id)
    client = _push(stack, raw)
    message = _assert_failure(_result(client, task_id), "")
    for phrase in expected.phrases:
        assert phrase.lower() in message.lower(), message

    try:
        doc = await ctx.store.get_document(doc_id)
    except NotFoundError:  # refused by type before a row was made: the result says why
        await ctx.storage.delete(key)  # the producer's file, which no document refers to
    else:
        assert doc.status is DocumentStatus.ERROR and doc.error, (doc.status, doc.error)
        assert doc.error in message and not any(leak in doc.error for leak in LEAKS), doc.error
    assert stack.worker_alive()
