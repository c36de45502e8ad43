"""The job store and its completion barrier on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from pipeline import migrations
from pipeline.errors import NotFoundError
from pipeline.jobs import DocumentStatus, DonePage, JobStore, PageStatus, parse_id


async def _store(database_url: str, schema: str, max_size: int = 10) -> JobStore:
    return await JobStore.connect(database_url, schema=schema, max_size=max_size)


async def _document_with_pages(store: JobStore, pages: int) -> uuid.UUID:
    doc_id = uuid.uuid4()
    await store.create_document(document_id=doc_id, source_key=f"documents/{doc_id}/source.pdf", kind="pdf")
    await store.start_pages(doc_id, kind="pdf", page_count=pages, engine="test")
    return doc_id


@pytest.mark.anyio
async def test_last_of_many_concurrent_pages_closes_the_barrier_exactly_once(
    database_url: str, db_schema: str
) -> None:
    store = await _store(database_url, db_schema, max_size=12)
    doc_id = await _document_with_pages(store, 40)
    outcomes = await asyncio.gather(
        *(store.finish_page(doc_id, n, PageStatus.DONE, text=f"page {n}") for n in range(1, 41))
    )
    assert sum(o.closed for o in outcomes) == 1
    assert all(o.counted for o in outcomes)
    doc = await store.get_document(doc_id)
    assert doc.pages_finished == 40
    assert doc.status is DocumentStatus.AGGREGATING
    await store.aclose()


@pytest.mark.anyio
async def test_duplicate_page_result_is_not_counted_twice(database_url: str, db_schema: str) -> None:
    store = await _store(database_url, db_schema)
    doc_id = await _document_with_pages(store, 2)
    first = await store.finish_page(doc_id, 1, PageStatus.DONE, text="one")
    again = await store.finish_page(doc_id, 1, PageStatus.FAILED, error="late duplicate")
    assert first.counted and not again.counted
    page = await store.get_page(doc_id, 1)
    assert page.status is PageStatus.DONE and page.text == "one" and page.error is None
    assert (await store.get_document(doc_id)).pages_finished == 1
    last = await store.finish_page(doc_id, 2, PageStatus.FAILED, error="bad page")
    assert last.closed
    await store.aclose()


@pytest.mark.anyio
async def test_pages_done_in_bulk_count_once_and_share_the_barrier(database_url: str, db_schema: str) -> None:
    store = await _store(database_url, db_schema)
    doc_id = await _document_with_pages(store, 3)
    pages = [DonePage(n, f"page {n}", 1.0, {"source": "text_layer", "lines": []}, 4) for n in (1, 3)]
    bulk = await store.finish_pages_done(doc_id, pages)
    assert bulk.counted and not bulk.closed and bulk.pages_finished == 2
    again = await store.finish_pages_done(doc_id, pages)  # a redelivered split message
    assert not again.counted and again.pages_finished == 2
    page = await store.get_page(doc_id, 3)
    assert page.status is PageStatus.DONE and page.text == "page 3" and page.attempts == 1
    assert page.result == {"source": "text_layer", "lines": []}
    last = await store.finish_page(doc_id, 2, PageStatus.DONE, text="scanned")
    assert last.closed  # the OCRed page closes the barrier the text pages share
    assert (await store.get_document(doc_id)).status is DocumentStatus.AGGREGATING
    await store.aclose()


@pytest.mark.anyio
async def test_cancelled_document_never_goes_to_aggregation(database_url: str, db_schema: str) -> None:
    store = await _store(database_url, db_schema)
    doc_id = await _document_with_pages(store, 3)
    assert await store.set_status(doc_id, DocumentStatus.CANCELLED, expect=[DocumentStatus.PROCESSING_CHUNKS])
    outcomes = [await store.finish_page(doc_id, n, PageStatus.SKIPPED) for n in (1, 2, 3)]
    assert not any(o.closed for o in outcomes)
    doc = await store.get_document(doc_id)
    assert doc.status is DocumentStatus.CANCELLED and doc.finished_at is not None
    await store.aclose()


@pytest.mark.anyio
async def test_start_pages_is_idempotent_and_returns_unfinished_pages(
    database_url: str, db_schema: str
) -> None:
    store = await _store(database_url, db_schema)
    doc_id = await _document_with_pages(store, 4)
    await store.finish_page(doc_id, 2, PageStatus.DONE, text="two")
    again = await store.start_pages(doc_id, kind="pdf", page_count=4, engine="test")
    assert again == [1, 3, 4]
    assert len(await store.list_pages(doc_id)) == 4
    created = await store.create_document(document_id=doc_id, source_key="other", kind="png")
    assert created.source_key == f"documents/{doc_id}/source.pdf"  # the first insert wins
    await store.aclose()


@pytest.mark.anyio
async def test_concurrent_start_ups_migrate_once(database_url: str, db_schema: str) -> None:
    stores = await asyncio.gather(*(_store(database_url, db_schema, max_size=2) for _ in range(4)))
    versions = {await s.migrate() for s in stores}
    assert versions == {len(migrations.MIGRATIONS)}
    count = await stores[0].pool.fetchval("SELECT count(*) FROM schema_migrations")
    assert count == len(migrations.MIGRATIONS)
    for s in stores:
        await s.aclose()


@pytest.mark.parametrize("bad", ["", "not-a-uuid", "../../etc/passwd", "1" * 500])
def test_malformed_ids_are_not_found(bad: str) -> None:
    with pytest.raises(NotFoundError, match="ids are UUIDs"):
        parse_id(bad)
