"""Read models of the job store: light page states, counts by status, durations, one day's activity.

The web layer (status polling, the event stream, thumbnails), the metrics scrape and the daily
summary read documents and pages through ``JobStore.reads`` and never write; the SQL lives here,
next to the store that changes the same rows, so a state or column is renamed in one package.
These reads skip page texts and OCR JSON, so polling stays cheap.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from pipeline.jobs.model import FINAL_DOCUMENT_STATES, FINAL_PAGE_STATES, DocumentStatus, PageStatus

# Status values as query parameters (``status = ANY($n::text[])``), never spelled out in SQL.
_FINAL_DOCUMENTS = sorted(s.value for s in FINAL_DOCUMENT_STATES)
_FINAL_PAGES = sorted(s.value for s in FINAL_PAGE_STATES)
# Pages that count as processed in the daily summary (skipped pages were never OCR'd).
_PROCESSED_PAGES = [PageStatus.DONE.value, PageStatus.FAILED.value]
_FAILED_DOCUMENTS = [DocumentStatus.ERROR.value, DocumentStatus.PARTIAL_ERROR.value]


@dataclass(frozen=True, slots=True)
class PageState:
    """A page's state without its text."""

    page_no: int
    status: PageStatus
    error: str | None
    source: str | None  # "text_layer" or "ocr" once the page is done (pipeline.textlayer)
    source_reason: str | None


@dataclass(frozen=True, slots=True)
class DocumentTick:
    """What the event stream polls: enough to see that something changed."""

    status: DocumentStatus
    error: str | None
    page_count: int | None
    pages_finished: int


@dataclass(frozen=True, slots=True)
class LatencyBuckets:
    """Cumulative counts per upper bound, their total and the sum of the values (ms)."""

    cumulative: tuple[int, ...]
    count: int
    sum_ms: int


@dataclass(frozen=True, slots=True)
class DayActivity:
    """What documents and pages did in one time window (``pipeline.stats`` keeps it per day)."""

    documents_created: dict[DocumentStatus, int]  # created in the window, by their state now
    documents_finished: dict[DocumentStatus, int]  # reached a final state in the window, by state
    document_quantiles_s: tuple[float, ...]  # p50, p95, p99 of upload -> final state; () when none
    pages_done: int
    pages_failed: int
    page_quantiles_ms: tuple[float, ...]  # p50, p95 of one page's render + OCR time; () when none
    peak_pages_per_minute: int  # pages done or failed in the busiest minute
    failure_reasons: tuple[tuple[str, int], ...]  # (error text cut to reason_chars, pages + documents)


async def _by_status(
    conn: asyncpg.Pool | asyncpg.Connection, table: str, where: str, *args: Any
) -> dict[str, int]:
    """Rows of ``table`` per status, only the statuses present; the one count-by-status query."""
    # ``table`` and ``where`` are literals of this module, never user input.
    rows = await conn.fetch(f"SELECT status, count(*) AS n FROM {table} WHERE {where} GROUP BY status", *args)
    return {r["status"]: int(r["n"]) for r in rows}


def _buckets(values: Sequence[Any], n: int) -> LatencyBuckets:
    """``n`` cumulative counts, then the total count, then the sum in ms."""
    return LatencyBuckets(tuple(int(v) for v in values[:n]), int(values[n]), int(values[n + 1]))


class JobReads:
    """Read-only queries over ``documents`` and ``pages``; reach it as ``JobStore.reads``."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def page_states(self, document_id: uuid.UUID, *, final_only: bool = False) -> list[PageState]:
        """Every page's state (or only finished pages), in page order."""
        rows = await self._pool.fetch(
            "SELECT page_no, status, error, result->>'source' AS source, result->>'source_reason' AS reason "
            "FROM pages WHERE document_id = $1 "
            "AND (NOT $2 OR status = ANY($3::text[])) ORDER BY page_no",
            document_id,
            final_only,
            _FINAL_PAGES,
        )
        return [
            PageState(r["page_no"], PageStatus(r["status"]), r["error"], r["source"], r["reason"]) for r in rows
        ]

    async def document_tick(self, document_id: uuid.UUID) -> DocumentTick | None:
        """The document's status and counters, None when it is gone."""
        row = await self._pool.fetchrow(
            "SELECT status, error, page_count, pages_finished FROM documents WHERE id = $1", document_id
        )
        if row is None:
            return None
        return DocumentTick(DocumentStatus(row["status"]), row["error"], row["page_count"], row["pages_finished"])

    async def count_documents(self, status: DocumentStatus | None = None) -> int:
        """How many documents there are (in one status, or all)."""
        value = await self._pool.fetchval(
            "SELECT count(*) FROM documents WHERE ($1::text IS NULL OR status = $1)",
            None if status is None else status.value,
        )
        return int(value)

    async def documents_by_status(self) -> dict[DocumentStatus, int]:
        """Document count per status, every status present (zero when none)."""
        counts = {s: 0 for s in DocumentStatus}
        found = await _by_status(self._pool, "documents", "TRUE")
        counts.update({DocumentStatus(s): n for s, n in found.items()})
        return counts

    async def pages_by_status(self, document_id: uuid.UUID | None = None) -> dict[PageStatus, int]:
        """Page count per status, of one document or of all; every status present (zero when none)."""
        counts = {s: 0 for s in PageStatus}
        if document_id is None:
            found = await _by_status(self._pool, "pages", "TRUE")
        else:  # its own statement, so the plan uses the document's index
            found = await _by_status(self._pool, "pages", "document_id = $1", document_id)
        counts.update({PageStatus(s): n for s, n in found.items()})
        return counts

    async def page_latency(self, bounds_ms: Sequence[int], *, window_s: float) -> LatencyBuckets:
        """Durations of pages finished in the last ``window_s`` seconds, bucketed at ``bounds_ms``."""
        # The bounds are integer constants of the caller (web.metrics), not user input.
        filters = ", ".join(f"count(*) FILTER (WHERE duration_ms <= {int(b)})" for b in bounds_ms)
        row = await self._pool.fetchrow(
            f"SELECT {filters}, count(*), COALESCE(sum(duration_ms), 0) FROM pages "
            "WHERE duration_ms IS NOT NULL AND finished_at > now() - make_interval(secs => $1)",
            float(window_s),
        )
        return _buckets(list(row.values()), len(bounds_ms))

    async def document_durations(
        self, bounds_s: Sequence[float], *, window_s: float
    ) -> dict[DocumentStatus, LatencyBuckets]:
        """Upload-to-final-state seconds of documents finished in the window, per final state (all present)."""
        # The bounds are constants of the caller (web.metrics), not user input.
        filters = ", ".join(f"count(*) FILTER (WHERE s <= {float(b)})" for b in bounds_s)
        rows = await self._pool.fetch(
            f"SELECT status, {filters}, count(*), COALESCE(sum(s), 0) FROM ("
            "  SELECT status, extract(epoch FROM finished_at - created_at) AS s FROM documents"
            "   WHERE finished_at > now() - make_interval(secs => $2) AND status = ANY($1::text[])) d"
            " GROUP BY status",
            _FINAL_DOCUMENTS, float(window_s),
        )  # fmt: skip
        n = len(bounds_s)
        out = {s: LatencyBuckets((0,) * n, 0, 0) for s in sorted(FINAL_DOCUMENT_STATES)}
        for row in rows:
            values = list(row.values())
            sum_ms = float(values[n + 2]) * 1000  # seconds (numeric) -> ms
            out[DocumentStatus(row["status"])] = _buckets([*values[1 : n + 2], sum_ms], n)
        return out

    async def day_activity(
        self, start: datetime, end: datetime, *, top_reasons: int, reason_chars: int
    ) -> DayActivity:
        """Documents created and finished, pages processed and failure reasons in ``[start, end)``."""
        async with self._pool.acquire() as conn:
            created = await _by_status(conn, "documents", "created_at >= $1 AND created_at < $2", start, end)
            finished = await _by_status(conn, "documents", "finished_at >= $1 AND finished_at < $2", start, end)
            doc_q = await conn.fetchval(
                """
                SELECT percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP
                       (ORDER BY extract(epoch FROM finished_at - created_at))
                  FROM documents WHERE finished_at >= $1 AND finished_at < $2
                """,
                start, end,
            )  # fmt: skip
            pages = await conn.fetchrow(
                """
                SELECT count(*) FILTER (WHERE status = $4) AS done,
                       count(*) FILTER (WHERE status = $5) AS failed,
                       percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY duration_ms) AS q,
                       (SELECT max(n) FROM (SELECT count(*) AS n FROM pages
                                             WHERE finished_at >= $1 AND finished_at < $2
                                               AND status = ANY($3::text[])
                                             GROUP BY date_trunc('minute', finished_at)) m) AS peak
                  FROM pages WHERE finished_at >= $1 AND finished_at < $2 AND status = ANY($3::text[])
                """,
                start, end, _PROCESSED_PAGES, PageStatus.DONE.value, PageStatus.FAILED.value,
            )  # fmt: skip
            reasons = await conn.fetch(
                """
                SELECT left(error, $3) AS reason, count(*) AS n FROM (
                    SELECT error FROM pages WHERE status = $5 AND finished_at >= $1 AND finished_at < $2
                    UNION ALL
                    SELECT error FROM documents WHERE status = ANY($6::text[])
                                                  AND finished_at >= $1 AND finished_at < $2
                ) f WHERE error IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT $4
                """,
                start, end, reason_chars, top_reasons, PageStatus.FAILED.value, _FAILED_DOCUMENTS,
            )  # fmt: skip
        return DayActivity(
            documents_created={DocumentStatus(s): n for s, n in created.items()},
            documents_finished={DocumentStatus(s): n for s, n in finished.items()},
            document_quantiles_s=tuple(doc_q or ()),
            pages_done=pages["done"],
            pages_failed=pages["failed"],
            page_quantiles_ms=tuple(pages["q"] or ()),
            peak_pages_per_minute=pages["peak"] or 0,
            failure_reasons=tuple((r["reason"], r["n"]) for r in reasons),
        )
