"""The daily summary on a real PostgreSQL, from documents, pages and artifacts the test writes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import pytest
from structlog.testing import capture_logs

from pipeline.artifacts import save_artifact
from pipeline.jobs import JobStore
from pipeline.stats import FailureReason, compute_day, record_day, stored_days

pytestmark = pytest.mark.anyio

DAY = date(2026, 3, 10)
NOON = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


async def _document(
    store: JobStore, status: str, *, created: datetime, finished: datetime | None = None, error: str | None = None,
    pages: Sequence[tuple[str, datetime, int, str | None]] = (),
) -> uuid.UUID:  # fmt: skip
    """A document with the given timestamps; pages are (status, finished_at, duration_ms, error)."""
    doc_id = uuid.uuid4()
    await store.create_document(document_id=doc_id, source_key=f"documents/{doc_id}/source.pdf", kind="pdf")
    if pages:
        await store.start_pages(doc_id, kind="pdf", page_count=len(pages), engine="test")
    for n, (page_status, at, ms, page_error) in enumerate(pages, start=1):
        await store.pool.execute(
            "UPDATE pages SET status = $3, finished_at = $4, duration_ms = $5, error = $6 "
            "WHERE document_id = $1 AND page_no = $2",
            doc_id, n, page_status, at, ms, page_error,
        )  # fmt: skip
    await store.pool.execute(
        "UPDATE documents SET status = $2, created_at = $3, finished_at = $4, error = $5 WHERE id = $1",
        doc_id, status, created, finished, error,
    )  # fmt: skip
    return doc_id


async def _fill(store: JobStore) -> None:
    minute = timedelta(minutes=1)
    # Finished that day: 60 s, 120 s and 600 s from upload to final state.
    ok = await _document(store, "completed", created=NOON, finished=NOON + minute, pages=[
        ("done", NOON + 10 * minute, 1000, None), ("done", NOON + 10 * minute, 3000, None),
        ("done", NOON + 10 * minute + timedelta(seconds=30), 2000, None),
    ])  # fmt: skip
    await _document(store, "partial_error", created=NOON, finished=NOON + 2 * minute,
                    error="1 of 2 pages failed", pages=[
        ("done", NOON + 20 * minute, 4000, None),
        ("failed", NOON + 20 * minute, 500, "page 2 could not be rendered: broken xref"),
    ])  # fmt: skip
    await _document(store, "error", created=NOON - timedelta(hours=13), finished=NOON + 10 * minute - timedelta(hours=13),
                    error="the file is not a PDF", pages=[])  # fmt: skip  # created and failed on 9 March
    await _document(store, "error", created=NOON, finished=NOON + 10 * minute, error="the file is not a PDF")
    # Created that day, still running; a page from the day before and one from the day after.
    await _document(store, "processing_chunks", created=NOON + 2 * minute, pages=[
        ("done", NOON - timedelta(days=1), 700, None), ("done", NOON + timedelta(days=1), 700, None),
        ("running", NOON, 0, None),
    ])  # fmt: skip
    await save_artifact(store, ok, "summary", {"s": 1}, tokens=300)
    await save_artifact(store, ok, "quiz", {"q": 1}, tokens=120)
    await store.pool.execute("UPDATE artifacts SET created_at = $1", NOON)


async def test_daily_summary_counts_what_happened_that_day(store: JobStore) -> None:
    try:
        await _fill(store)
        s = await compute_day(store, DAY)
    finally:
        await store.aclose()
    assert s.day == DAY
    assert s.documents_created == {"completed": 1, "partial_error": 1, "error": 1, "processing_chunks": 1}
    assert s.documents_finished == {"completed": 1, "partial_error": 1, "error": 1}
    assert s.document_seconds["p50"] == 120.0 and s.document_seconds["p99"] > 590
    assert (s.pages_done, s.pages_failed, s.pages_processed) == (4, 1, 5)
    assert s.pages_per_s == round(5 / 86400, 6)
    assert s.peak_pages_per_s == round(3 / 60, 4)  # three pages finished in the 12:10 minute
    assert s.page_seconds == {"p50": 2.0, "p95": 3.8}
    assert s.failure_reasons == (
        FailureReason("1 of 2 pages failed", 1),
        FailureReason("page 2 could not be rendered: broken xref", 1),
        FailureReason("the file is not a PDF", 1),
    )
    assert s.llm_tokens == {"quiz": 120, "summary": 300}


async def test_recording_a_day_twice_keeps_one_row_and_logs_one_line_each(
    database_url: str, db_schema: str
) -> None:
    store = await JobStore.connect(database_url, schema=db_schema, max_size=4)
    try:
        empty = await record_day(store, DAY)
        assert empty.pages_processed == 0 and empty.document_seconds == {} and empty.failure_reasons == ()
        await _fill(store)
        with capture_logs() as logs:
            a, b = await asyncio.gather(record_day(store, DAY), record_day(store, DAY))
        assert a == b
        assert [e["event"] for e in logs] == ["stats.daily", "stats.daily"]
        assert logs[0]["pages_processed"] == 5 and logs[0]["day"] == "2026-03-10"
        assert logs[0]["failure_reasons"][0] == ["1 of 2 pages failed", 1]
        with capture_logs() as quiet:
            await record_day(store, DAY - timedelta(days=1), log_line=False)
        assert quiet == []
        assert await store.pool.fetchval("SELECT count(*) FROM daily_stats") == 2
        stored = await stored_days(store, days=7)
        assert [s.day for s in stored] == [DAY, DAY - timedelta(days=1)]
        assert stored[0] == a  # the stored row round-trips, replaced by the later run
        assert stored[1].documents_finished == {"error": 1}
    finally:
        await store.aclose()
