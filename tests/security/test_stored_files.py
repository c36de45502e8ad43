"""The same hostile files, but put straight into storage and named by a Celery producer
(``tasks.ocr_document(storage_key=...)``): no upload check runs, so the worker process is the
one that must refuse each with a readable reason, both in the Celery result and on the document."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest

from pipeline.context import Context
from pipeline.documents import document_id_for_message
from pipeline.errors import NotFoundError
from pipeline.jobs import DocumentStatus
from tests.security._http import LEAKS
from tests.security.conftest import Stack
from tests.security.test_envelopes import _assert_failure, _push, _result, envelope
from tests.security.test_files import FILES, Refused

REFUSED_FILES = [
    (name, build, expected) for name, build, _, expected in FILES if isinstance(expected, Refused)
]


@pytest.mark.parametrize(
    ("build", "expected"), [c[1:] for c in REFUSED_FILES], ids=[c[0] for c in REFUSED_FILES]
)
def test_bad_stored_file_fails_in_the_worker_with_a_reason(
    stack: Stack, build: Callable[[], bytes], expected: Refused
) -> None:
    task_id = str(uuid.uuid4())
    doc_id = document_id_for_message(task_id)  # the id the worker gives such a document
    key = f"documents/{doc_id}/source.bin"

    async def store() -> None:
        ctx = await Context.open(stack.settings, migrate=False)
        try:
            await ctx.storage.put_bytes(key, build())
        finally:
            await ctx.aclose()

    asyncio.run(store())
    _, raw = envelope("tasks.ocr_document", kwargs={"storage_key": key}, task_id=task_id)
    client = _push(stack, raw)
    message = _assert_failure(_result(client, task_id), "")
    for phrase in expected.phrases:
        assert phrase.lower() in message.lower(), message

    async def document() -> tuple[DocumentStatus, str | None] | None:
        ctx = await Context.open(stack.settings, migrate=False)
        try:
            doc = await ctx.store.get_document(doc_id)
            return doc.status, doc.error
        except NotFoundError:  # refused by type before a row was made: the result says why
            await ctx.storage.delete(key)  # the producer's file, which no document refers to
            return None
        finally:
            await ctx.aclose()

    found = asyncio.run(document())
    if found is not None:
        status, error = found
        assert status is DocumentStatus.ERROR and error, found
        assert error in message and not any(leak in error for leak in LEAKS), error
    assert stack.worker_alive()
