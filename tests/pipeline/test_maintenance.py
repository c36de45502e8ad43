"""The reaper on a real PostgreSQL: finds lost work, gives up after a limit, never doubles up."""

from __future__ import annotations

import asyncio
import uuid

from pipeline.jobs import DocumentStatus, JobStore, PageStatus
from pipeline.maintenance import reap


async def _backdate(store: JobStore, doc_id: uuid.UUID, seconds: int) -> None:
    await store.pool.execute(
        "UPDATE documents SET updated_at = now() - make_interval(secs => $2) WHERE id = $1", doc_id, float(seconds)
    )
    await store.pool.execute(
        "UPDATE pages SET started_at = now() - make_interval(secs => $2), "
        "resent_at = now() - make_interval(secs => $2) WHERE document_id = $1", doc_id, float(seconds)
    )


async def _split_document(store: JobStore, pages: int) -> uuid.UUID:
    doc_id = uuid.uuid4()
    await store.create_document(document_id=doc_id, source_key="k", kind="pdf")
    await store.start_pages(doc_id, kind="pdf", page_count=pages, engine="test")
    return doc_id


def test_reaper_resends_lost_pages_then_fails_them_and_closes_the_document(database_url: str, db_schema: str) -> None:
    async def scenario() -> None:
        store = await JobStore.connect(database_url, schema=db_schema)
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
        await store.aclose()

    asyncio.run(scenario())


def test_reaper_resends_unsplit_documents_and_stuck_aggregations(database_url: str, db_schema: str) -> None:
    async def scenario() -> None:
        store = await JobStore.connect(database_url, schema=db_schema)
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
        await store.aclose()

    asyncio.run(scenario())


def test_two_reapers_at_once_split_the_work(database_url: str, db_schema: str) -> None:
    async def scenario() -> None:
        store = await JobStore.connect(database_url, schema=db_schema, max_size=4)
        doc_ids = [await _split_document(store, 5) for _ in range(6)]
        for doc_id in doc_ids:
            await _backdate(store, doc_id, 1000)
        a, b = await asyncio.gather(*(reap(store, age_s=600, max_resends=3) for _ in range(2)))
        assert not set(a.pages) & set(b.pages)
        assert len(a.pages) + len(b.pages) == 30
        await store.aclose()

    asyncio.run(scenario())
