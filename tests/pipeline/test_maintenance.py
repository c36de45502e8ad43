"""The reaper and the retention purge on a real PostgreSQL (and local/S3 storage): they find
only what is due, and two runs at once never double up."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from pipeline.artifacts import save_artifact
from pipeline.jobs import DocumentStatus, JobStore, PageStatus
from pipeline.maintenance import purge_expired, reap
from pipeline.storage import LocalStorage, Storage

pytestmark = pytest.mark.anyio


async def _backdate(store: JobStore, doc_id: uuid.UUID, seconds: int) -> None:
    await store.pool.execute(
        "UPDATE documents SET updated_at = now() - make_interval(secs => $2) WHERE id = $1",
        doc_id,
        float(seconds),
    )
    await store.pool.execute(
        "UPDATE pages SET started_at = now() - make_interval(secs => $2), "
        "resent_at = now() - make_interval(secs => $2) WHERE document_id = $1",
        doc_id,
        float(seconds),
    )


async def _split_document(store: JobStore, pages: int) -> uuid.UUID:
    doc_id = uuid.uuid4()
    await store.create_document(document_id=doc_id, source_key="k", kind="pdf")
    await store.start_pages(doc_id, kind="pdf", page_count=pages, engine="test")
    return doc_id


async def test_reaper_resends_lost_pages_then_fails_them_and_closes_the_document(store: JobStore) -> None:
    doc_id = await _split_document(store, 3)
    await store.finish_page(doc_id, 1, PageStatus.DONE, text="kept")
    fresh = await _split_document(store, 1)  # recent: must not be touched
    await _backdate(store, doc_id, 1000)

    plan = await reap(store, age_s=600, max_resends=2)
    assert sorted(plan.pages) == [(doc_id, 2), (doc_id, 3)]
    assert not any(d == fresh for d, _ in plan.pages)
    again = await reap(store, age_s=600, max_resends=2)
    assert again.pages == []  # just re-sent: not stale yet

    for _ in range(2):
        await _backdate(store, doc_id, 1000)
        plan = await reap(store, age_s=600, max_resends=2)
    assert plan.pages_failed == 2 and plan.aggregations == [doc_id]
    pages = await store.list_pages(doc_id)
    assert [p.status for p in pages] == [PageStatus.DONE, PageStatus.FAILED, PageStatus.FAILED]
    assert "lost 3 times" in (pages[1].error or "")
    assert (await store.get_document(doc_id)).status is DocumentStatus.AGGREGATING


async def test_reaper_resends_unsplit_documents_and_stuck_aggregations(store: JobStore) -> None:
    queued = uuid.uuid4()
    await store.create_document(document_id=queued, source_key="k", kind="pdf")
    stuck = await _split_document(store, 1)
    await store.finish_page(stuck, 1, PageStatus.DONE, text="x")  # -> aggregating, enqueue "lost"
    for doc_id in (queued, stuck):
        await _backdate(store, doc_id, 1000)
    plan = await reap(store, age_s=600, max_resends=1)
    assert plan.documents == [queued] and plan.aggregations == [stuck]
    await _backdate(store, queued, 1000)
    plan = await reap(store, age_s=600, max_resends=1)
    assert plan.documents == [] and plan.documents_failed == 1
    doc = await store.get_document(queued)
    assert doc.status is DocumentStatus.ERROR and "never split" in (doc.error or "")


async def test_reaper_resumes_a_silent_postprocessing_chain_with_only_the_missing_steps(store: JobStore) -> None:
    doc_id = uuid.uuid4()
    await store.create_document(
        document_id=doc_id,
        source_key="k",
        kind="pdf",
        options={"postprocess": ["summary", "flashcards", "quiz"]},
    )
    await store.start_pages(doc_id, kind="pdf", page_count=2, engine="test")
    await store.finish_page(doc_id, 1, PageStatus.DONE, text="kept")
    await store.finish_page(doc_id, 2, PageStatus.FAILED, error="boom")
    await store.finish_document(doc_id, DocumentStatus.POSTPROCESSING, result_key=None, error=None)
    await save_artifact(store, doc_id, "summary", {"summary": {}}, tokens=10)
    busy = uuid.uuid4()  # post-processing, but a step stored an artifact just now: not silent
    await store.create_document(
        document_id=busy, source_key="k", kind="pdf", options={"postprocess": ["quiz"]}
    )
    await store.start_pages(busy, kind="pdf", page_count=1, engine="test")
    await store.finish_page(busy, 1, PageStatus.DONE, text="x")
    await store.finish_document(busy, DocumentStatus.POSTPROCESSING, result_key=None, error=None)
    await save_artifact(store, busy, "summary", {"summary": {}}, tokens=1)
    await _backdate(store, busy, 1000)

    assert (await reap(store, age_s=600, max_resends=2)).postprocessing == []  # all recent
    await _backdate(store, doc_id, 1000)
    await store.pool.execute(
        "UPDATE artifacts SET created_at = now() - interval '1000 seconds' WHERE document_id = $1", doc_id
    )
    plan = await reap(store, age_s=600, max_resends=2)
    assert [(r.document_id, r.steps, r.finish_as) for r in plan.postprocessing] == [
        (doc_id, ["flashcards", "quiz"], DocumentStatus.PARTIAL_ERROR)  # page 2 failed
    ]
    assert (await reap(store, age_s=600, max_resends=2)).postprocessing == []  # just re-sent


async def test_two_reapers_at_once_split_the_work(database_url: str, db_schema: str) -> None:
    store = await JobStore.connect(database_url, schema=db_schema, max_size=4)
    doc_ids = [await _split_document(store, 5) for _ in range(6)]
    for doc_id in doc_ids:
        await _backdate(store, doc_id, 1000)
    a, b = await asyncio.gather(*(reap(store, age_s=600, max_resends=3) for _ in range(2)))
    assert not set(a.pages) & set(b.pages)
    assert len(a.pages) + len(b.pages) == 30
    await store.aclose()


# --- retention purge ---------------------------------------------------------------------------

RETENTION = timedelta(days=30)


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    """The purge runs against both storage adapters (S3: a moto server, a bucket per test)."""
    if request.param == "s3":
        s3: Storage = request.getfixturevalue("s3_storage")
        return s3
    return LocalStorage(tmp_path / "storage")


async def _stored_document(
    store: JobStore,
    storage: Storage,
    status: DocumentStatus,
    *,
    days_ago: float,
    source_key: str | None = None,
) -> uuid.UUID:
    """A document in ``status`` that last changed (or finished) ``days_ago``, with files, pages, artifacts."""
    doc_id = uuid.uuid4()
    prefix = f"documents/{doc_id}/"
    key = source_key or f"{prefix}source.pdf"
    await store.create_document(document_id=doc_id, source_key=key, kind="pdf")
    await store.start_pages(doc_id, kind="pdf", page_count=2, engine="test")
    await save_artifact(store, doc_id, "summary", {"summary": "s"}, tokens=12)
    if source_key is None or not await storage.exists(key):
        await storage.put_bytes(key, b"%PDF-1.7 source")
    for name in ("result.txt", "result.json", "thumbnails/1.png", "thumbnails/2.png"):
        await storage.put_bytes(prefix + name, b"x")
    when = f"now() - make_interval(secs => {days_ago * 86400})"
    finished = when if status.is_final and status is not DocumentStatus.CANCELLED else "NULL"
    await store.pool.execute(
        f"UPDATE documents SET status = $2, updated_at = {when}, finished_at = {finished} WHERE id = $1",
        doc_id, status.value,
    )  # fmt: skip
    return doc_id


async def _keys(storage: Storage, doc_id: uuid.UUID) -> list[str]:
    names = ("source.pdf", "result.txt", "result.json", "thumbnails/1.png", "thumbnails/2.png")
    return [n for n in names if await storage.exists(f"documents/{doc_id}/{n}")]


async def _rows(store: JobStore, doc_id: uuid.UUID) -> tuple[int, int, int]:
    row = await store.pool.fetchrow(
        "SELECT (SELECT count(*) FROM documents WHERE id = $1), (SELECT count(*) FROM pages WHERE document_id = $1), "
        "(SELECT count(*) FROM artifacts WHERE document_id = $1)",
        doc_id,
    )
    return (row[0], row[1], row[2])


async def test_purge_deletes_only_old_finished_documents(
    database_url: str, db_schema: str, storage: Storage
) -> None:
    store = await JobStore.connect(database_url, schema=db_schema)
    try:
        old = [
            await _stored_document(store, storage, DocumentStatus.COMPLETED, days_ago=40),
            await _stored_document(store, storage, DocumentStatus.ERROR, days_ago=31),
            await _stored_document(store, storage, DocumentStatus.CANCELLED, days_ago=90),  # no finished_at
        ]
        recent = await _stored_document(store, storage, DocumentStatus.COMPLETED, days_ago=29)
        running = await _stored_document(store, storage, DocumentStatus.PROCESSING_CHUNKS, days_ago=60)
        queued = await _stored_document(store, storage, DocumentStatus.QUEUED, days_ago=60)
        # Celery producers' sources outside documents/<id>/: one read by an old document only,
        # one shared with a recent document (it must stay).
        alone = await _stored_document(store, storage, DocumentStatus.COMPLETED, days_ago=40,
                                       source_key="incoming/alone.pdf")  # fmt: skip
        shared_old = await _stored_document(store, storage, DocumentStatus.COMPLETED, days_ago=40,
                                            source_key="incoming/shared.pdf")  # fmt: skip
        shared_new = await _stored_document(store, storage, DocumentStatus.QUEUED, days_ago=0,
                                            source_key="incoming/shared.pdf")  # fmt: skip

        result = await purge_expired(store, storage, older_than=RETENTION, batch_size=2, max_batches=10)

        gone = [*old, alone, shared_old]
        assert sorted(result.documents) == sorted(gone)
        assert result.batches == 3
        # 5 objects under each prefix (4 for the external-source ones) + incoming/alone.pdf
        assert result.objects == 3 * 5 + 2 * 4 + 1
        for doc_id in gone:
            assert await _keys(storage, doc_id) == []
            assert await _rows(store, doc_id) == (0, 0, 0)
        assert not await storage.exists("incoming/alone.pdf")
        assert await storage.exists("incoming/shared.pdf")
        for doc_id in (recent, running, queued):
            assert len(await _keys(storage, doc_id)) == 5
            assert await _rows(store, doc_id) == (1, 2, 1)
        assert await _rows(store, shared_new) == (1, 2, 1)

        again = await purge_expired(store, storage, older_than=RETENTION, batch_size=2, max_batches=10)
        assert again.documents == () and again.objects == 0
    finally:
        await store.aclose()
        await storage.aclose()


async def test_two_purges_at_once_split_the_documents(
    database_url: str, db_schema: str, storage: Storage
) -> None:
    store = await JobStore.connect(database_url, schema=db_schema, max_size=4)
    try:
        doc_ids = [
            await _stored_document(store, storage, DocumentStatus.COMPLETED, days_ago=45) for _ in range(12)
        ]
        a, b = await asyncio.gather(
            *(
                purge_expired(store, storage, older_than=RETENTION, batch_size=2, max_batches=100)
                for _ in range(2)
            )
        )
        assert not set(a.documents) & set(b.documents)
        assert sorted(a.documents + b.documents) == sorted(doc_ids)
        assert a.objects + b.objects == 12 * 5  # every object deleted exactly once
        assert await store.pool.fetchval("SELECT count(*) FROM documents") == 0
    finally:
        await store.aclose()
        await storage.aclose()


async def test_purge_stops_after_max_batches_and_the_next_run_goes_on(
    database_url: str, db_schema: str, tmp_path: Path
) -> None:
    store = await JobStore.connect(database_url, schema=db_schema)
    storage = LocalStorage(tmp_path / "storage")
    try:
        for _ in range(5):
            await _stored_document(store, storage, DocumentStatus.PARTIAL_ERROR, days_ago=100)
        first = await purge_expired(store, storage, older_than=RETENTION, batch_size=2, max_batches=2)
        assert (len(first.documents), first.batches) == (4, 2)
        second = await purge_expired(store, storage, older_than=RETENTION, batch_size=2, max_batches=2)
        assert (len(second.documents), second.batches) == (1, 1)
        assert sorted(p.name for p in (tmp_path / "storage").iterdir()) == []  # empty dirs pruned too
    finally:
        await store.aclose()
