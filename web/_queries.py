"""Read-only SQL the web layer needs beyond JobStore: light page states, counts, latency buckets.

These read the job store's tables directly and never write; they exist so status polling and
metrics do not load page texts and OCR JSON.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from pipeline.jobs import DocumentStatus, PageStatus


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
    """Cumulative page counts per upper bound (ms), their total and sum of durations (ms)."""

    cumulative: tuple[int, ...]
    count: int
    sum_ms: int


async def page_states(
    pool: asyncpg.Pool, document_id: uuid.UUID, *, final_only: bool = False
) -> list[PageState]:
    """Every page's state (or only finished pages), in page order."""
    rows = await pool.fetch(
        "SELECT page_no, status, error, result->>'source' AS source, result->>'source_reason' AS reason "
        "FROM pages WHERE document_id = $1 "
        "AND (NOT $2 OR status IN ('done', 'failed', 'skipped')) ORDER BY page_no",
        document_id,
        final_only,
    )
    return [PageState(r["page_no"], PageStatus(r["status"]), r["error"], r["source"], r["reason"]) for r in rows]


async def document_tick(pool: asyncpg.Pool, document_id: uuid.UUID) -> DocumentTick | None:
    """The document's status and counters, None when it is gone."""
    row = await pool.fetchrow(
        "SELECT status, error, page_count, pages_finished FROM documents WHERE id = $1", document_id
    )
    if row is None:
        return None
    return DocumentTick(DocumentStatus(row["status"]), row["error"], row["page_count"], row["pages_finished"])


async def count_documents(pool: asyncpg.Pool, status: DocumentStatus | None) -> int:
    """How many documents there are (in one status, or all)."""
    value = await pool.fetchval(
        "SELECT count(*) FROM documents WHERE ($1::text IS NULL OR status = $1)",
        None if status is None else status.value,
    )
    return int(value)


async def documents_by_status(pool: asyncpg.Pool) -> dict[DocumentStatus, int]:
    """Document count per status, every status present (zero when none)."""
    rows = await pool.fetch("SELECT status, count(*) AS n FROM documents GROUP BY status")
    counts = {s: 0 for s in DocumentStatus}
    counts.update({DocumentStatus(r["status"]): r["n"] for r in rows})
    return counts


async def page_latency(pool: asyncpg.Pool, bounds_ms: Sequence[int], *, window_s: float) -> LatencyBuckets:
    """Durations of pages finished in the last ``window_s`` seconds, bucketed at ``bounds_ms``."""
    # The bounds are integer constants of the metrics module, not user input.
    filters = ", ".join(f"count(*) FILTER (WHERE duration_ms <= {int(b)})" for b in bounds_ms)
    row = await pool.fetchrow(
        f"SELECT {filters}, count(*), COALESCE(sum(duration_ms), 0) FROM pages "
        "WHERE duration_ms IS NOT NULL AND finished_at > now() - make_interval(secs => $1)",
        float(window_s),
    )
    values = list(row.values())
    return LatencyBuckets(tuple(int(v) for v in values[: len(bounds_ms)]), int(values[-2]), int(values[-1]))
