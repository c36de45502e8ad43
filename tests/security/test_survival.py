"""After every hostile input above went through them (this module runs last): the same app,
worker process and bridge still serve a good document and a Celery call, every document reached
a final state with a readable reason, and storage holds nothing outside ``documents/<id>/``."""

from __future__ import annotations

import asyncio
import re
import uuid

import pytest
from celery import Celery

from pipeline.jobs import FINAL_DOCUMENT_STATES, DocumentStatus
from tests import pages
from tests.fixtures_async import OpenContext
from tests.security import corpus
from tests.security._http import LEAKS, file_part, upload
from tests.security.conftest import Stack

_KEY = re.compile(r"^documents/([0-9a-f-]{36})/(?!.*(?:^|/)\.\.?(?:/|$)).+$")
# The one file outside documents/: /readyz's write probe of local storage (pipeline/storage/local.py).
PROBE_FILE = ".pagemill-check"


def test_a_good_document_still_completes(stack: Stack) -> None:
    assert stack.worker_alive(), stack.worker_log.read_text()[-3000:]
    with stack.client() as client:
        response = upload(client, [file_part(corpus.good_pdf(), b"good.pdf")])
        assert response.status_code == 202, response.text
        doc = stack.wait(response.json()["id"])
        assert doc.status is DocumentStatus.COMPLETED, doc.error
        text = client.get(f"/api/documents/{doc.id}/text").text
    assert pages.cer(text, "\n".join(pages.PARAGRAPH_A)) < 0.05, text
    assert stack.worker_alive()


def test_the_bridge_still_runs_celery_calls(stack: Stack) -> None:
    assert stack.bridge_thread.is_alive()
    url = stack.settings.redis_url
    app = Celery("survivor", broker=url, backend=url)
    app.conf.update(task_default_queue=stack.celery_queue, task_serializer="json", accept_content=["json"])
    try:
        assert app.send_task("tasks.echo", args=[{"still": "here"}]).get(timeout=30) == {"still": "here"}
    finally:
        app.close()


@pytest.mark.anyio
async def test_every_document_ended_with_a_readable_reason(stack: Stack, open_context: OpenContext) -> None:
    ctx = await open_context(stack.settings, migrate=False)
    docs = await ctx.store.list_documents(status=None, limit=10_000, offset=0)
    for doc in docs:
        if doc.status not in FINAL_DOCUMENT_STATES:
            await asyncio.to_thread(stack.wait, str(doc.id))
    for doc in await ctx.store.list_documents(status=None, limit=10_000, offset=0):
        assert doc.status in FINAL_DOCUMENT_STATES, (doc.id, doc.status)
        if doc.error:
            assert not any(leak in doc.error for leak in LEAKS), doc.error
    assert len(docs) >= 1


@pytest.mark.anyio
async def test_nothing_was_written_outside_documents_of_an_id(
    stack: Stack, open_context: OpenContext
) -> None:
    ctx = await open_context(stack.settings, migrate=False)
    ids = {str(d.id) for d in await ctx.store.list_documents(status=None, limit=10_000, offset=0)}
    keys = stack.stored_keys()
    assert keys
    for key in keys:
        if key == PROBE_FILE:
            continue
        match = _KEY.match(key)
        assert match and match.group(1) in ids, f"unexpected file in storage: {key!r}"
        uuid.UUID(match.group(1))
    data_dir = stack.settings.data_dir
    assert {p.name for p in data_dir.iterdir()} <= {"storage", "cache", "uploads"}, list(data_dir.iterdir())
    uploads = data_dir / "uploads"
    assert not uploads.exists() or not any(uploads.iterdir()), "upload temp files were left behind"
    for name in ("passwd", "passwd.pdf", "win.ini", "evil.exe", "evil.pdf"):
        assert not list(data_dir.rglob(name)), name
