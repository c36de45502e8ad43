"""Periodic maintenance steps: the reaper that finds lost work.

Messages can be lost in ways retries never see: a worker killed between the barrier's commit
and the aggregation enqueue, a Redis restart without AOF, a message purged by hand. The reaper
finds documents silent for longer than ``reaper_age_s`` and says what to re-send; every re-sent
message is idempotent, so a false positive costs only duplicate work. Rows are claimed with
``FOR UPDATE SKIP LOCKED`` so two reapers running at once split the work instead of doubling it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import structlog

from pipeline.jobs import JobStore, PageStatus

log = structlog.get_logger(__name__)

# Documents in `aggregating` are re-sent sooner: aggregation takes seconds, not minutes.
AGGREGATION_AGE_S = 120
# Rows handled per run, so one run stays short whatever the backlog.
BATCH = 500


@dataclass(slots=True)
class ReapPlan:
    """What the reaper found: messages to re-send, and pages it gave up on."""

    documents: list[uuid.UUID] = field(default_factory=list)  # re-send tasks.ocr_document
    pages: list[tuple[uuid.UUID, int]] = field(default_factory=list)  # re-send tasks.ocr_page
    aggregations: list[uuid.UUID] = field(default_factory=list)  # re-send tasks.aggregate_document
    pages_failed: int = 0
    documents_failed: int = 0


async def reap(store: JobStore, *, age_s: int, max_resends: int) -> ReapPlan:
    """Find lost work; mark what was lost too often as failed. The caller sends the plan."""
    plan = ReapPlan()
    async with store.pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            """
            UPDATE documents d SET resends = d.resends + 1, updated_at = now(),
                   status = CASE WHEN d.resends >= $2 THEN 'error' ELSE d.status END,
                   error = CASE WHEN d.resends >= $2
                                THEN 'the document was never split into pages: its message was lost '
                                     || (d.resends + 1) || ' times' ELSE d.error END,
                   finished_at = CASE WHEN d.resends >= $2 THEN now() ELSE d.finished_at END
             WHERE d.id IN (SELECT id FROM documents
                             WHERE status IN ('queued', 'extracting') AND updated_at < now() - make_interval(secs => $1)
                             ORDER BY updated_at LIMIT $3 FOR UPDATE SKIP LOCKED)
            RETURNING d.id, d.status
            """,
            float(age_s), max_resends, BATCH,
        )  # fmt: skip
        for row in rows:
            if row["status"] == "error":
                plan.documents_failed += 1
            else:
                plan.documents.append(row["id"])
        rows = await conn.fetch(
            """
            UPDATE documents SET updated_at = now()
             WHERE id IN (SELECT id FROM documents
                           WHERE status = 'aggregating' AND updated_at < now() - make_interval(secs => $1)
                           ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED)
            RETURNING id
            """,
            float(min(age_s, AGGREGATION_AGE_S)), BATCH,
        )  # fmt: skip
        plan.aggregations.extend(r["id"] for r in rows)
        stale_pages = await conn.fetch(
            """
            SELECT p.document_id, p.page_no, p.resends FROM pages p JOIN documents d ON d.id = p.document_id
             WHERE d.status = 'processing_chunks' AND p.status IN ('pending', 'running')
               AND greatest(p.started_at, p.resent_at, d.updated_at) < now() - make_interval(secs => $1)
             ORDER BY d.updated_at LIMIT $2 FOR UPDATE OF p SKIP LOCKED
            """,
            float(age_s), BATCH,
        )  # fmt: skip
        resend = [(r["document_id"], r["page_no"]) for r in stale_pages if r["resends"] < max_resends]
        await conn.executemany(
            "UPDATE pages SET resends = resends + 1, resent_at = now() WHERE document_id = $1 AND page_no = $2",
            resend,
        )
        plan.pages.extend(resend)
    # Pages lost too often fail through the barrier (outside the claim transaction: one each).
    for r in stale_pages:
        if r["resends"] >= max_resends:
            outcome = await store.finish_page(
                r["document_id"], r["page_no"], PageStatus.FAILED,
                error=f"the page's message was lost {r['resends'] + 1} times (no worker finished it)",
            )  # fmt: skip
            plan.pages_failed += 1
            if outcome.closed:
                plan.aggregations.append(r["document_id"])
    if plan.documents or plan.pages or plan.aggregations or plan.pages_failed or plan.documents_failed:
        log.warning(
            "reaper.found_lost_work",
            documents=len(plan.documents),
            pages=len(plan.pages),
            aggregations=len(plan.aggregations),
            pages_failed=plan.pages_failed,
            documents_failed=plan.documents_failed,
        )
    return plan
