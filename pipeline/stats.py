"""The daily summary: what one UTC day brought, read through the job store's read model and kept per day.

A day is ``[00:00, 24:00)`` UTC. Documents count by the state they are in now (created that
day) and by the final state they reached that day; pages count when they finished that day.
Computing a day again replaces its row, so the scheduled job may run twice or late.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import structlog

from pipeline.artifacts import tokens_by_kind
from pipeline.jobs import JobStore

log = structlog.get_logger(__name__)

# Failure reasons kept per day, and the characters of each (reasons name pages and values).
TOP_REASONS = 5
REASON_CHARS = 200
DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class FailureReason:
    """One error text and how many pages or documents failed with it that day."""

    reason: str
    count: int


@dataclass(frozen=True, slots=True)
class DailySummary:
    """One UTC day of work."""

    day: date
    documents_created: dict[str, int]  # documents created that day, by their current state
    documents_finished: dict[str, int]  # documents that reached a final state that day, by state
    document_seconds: dict[str, float]  # p50/p95/p99 of upload -> final state, documents finished that day
    pages_done: int
    pages_failed: int
    pages_per_s: float  # finished pages / seconds of the day (elapsed seconds for today)
    peak_pages_per_s: float  # the busiest minute
    page_seconds: dict[str, float]  # p50/p95 of one page's render + OCR time
    failure_reasons: tuple[FailureReason, ...]
    llm_tokens: dict[str, int] = field(default_factory=dict)  # by artifact kind (summary, quiz, ...)

    @property
    def pages_processed(self) -> int:
        """Pages that finished that day, done or failed."""
        return self.pages_done + self.pages_failed

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the stored form)."""
        data = asdict(self)
        data["day"] = self.day.isoformat()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DailySummary:
        """Rebuild a summary from :meth:`to_json`."""
        values = dict(data)
        values["day"] = date.fromisoformat(values["day"])
        values["failure_reasons"] = tuple(FailureReason(**r) for r in values["failure_reasons"])
        return cls(**values)


def _window(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tzinfo=UTC)
    return start, start + DAY


async def compute_day(store: JobStore, day: date) -> DailySummary:
    """Read one UTC day's numbers from the job store (nothing is written)."""
    start, end = _window(day)
    now = datetime.now(UTC)
    elapsed = max(1.0, (min(end, now) - start).total_seconds())
    activity = await store.reads.day_activity(start, end, top_reasons=TOP_REASONS, reason_chars=REASON_CHARS)
    tokens = await tokens_by_kind(store, start, end)
    processed = activity.pages_done + activity.pages_failed
    return DailySummary(
        day=day,
        documents_created={k.value: n for k, n in activity.documents_created.items()},
        documents_finished={k.value: n for k, n in activity.documents_finished.items()},
        document_seconds=dict(
            zip(("p50", "p95", "p99"), (round(v, 3) for v in activity.document_quantiles_s), strict=False)
        ),
        pages_done=activity.pages_done,
        pages_failed=activity.pages_failed,
        pages_per_s=round(processed / elapsed, 6),
        peak_pages_per_s=round(activity.peak_pages_per_minute / 60, 4),
        page_seconds=dict(
            zip(("p50", "p95"), (round(v / 1000, 3) for v in activity.page_quantiles_ms), strict=False)
        ),
        failure_reasons=tuple(FailureReason(reason, n) for reason, n in activity.failure_reasons),
        llm_tokens=tokens,
    )


async def record_day(store: JobStore, day: date, *, log_line: bool = True) -> DailySummary:
    """Compute one day and store it (replacing an earlier run's row); log it as one line if asked."""
    summary = await compute_day(store, day)
    await store.pool.execute(
        """
        INSERT INTO daily_stats (day, summary) VALUES ($1, $2)
        ON CONFLICT (day) DO UPDATE SET summary = EXCLUDED.summary, computed_at = now()
        """,
        day, summary.to_json(),
    )  # fmt: skip
    if not log_line:
        return summary
    log.info(
        "stats.daily",
        day=day.isoformat(),
        documents_created=summary.documents_created,
        documents_finished=summary.documents_finished,
        document_seconds=summary.document_seconds,
        pages_processed=summary.pages_processed,
        pages_failed=summary.pages_failed,
        pages_per_s=summary.pages_per_s,
        peak_pages_per_s=summary.peak_pages_per_s,
        failure_reasons=[[r.reason, r.count] for r in summary.failure_reasons],
        llm_tokens=summary.llm_tokens,
    )
    return summary


async def stored_days(store: JobStore, *, days: int) -> list[DailySummary]:
    """The newest ``days`` stored summaries, newest first."""
    rows = await store.pool.fetch("SELECT summary FROM daily_stats ORDER BY day DESC LIMIT $1", days)
    return [DailySummary.from_json(r["summary"]) for r in rows]  # the pool decodes jsonb
