"""Lost work, claimed in one transaction: what the reaper (pipeline.maintenance) re-sends or gives up on.

Rows are claimed with ``FOR UPDATE SKIP LOCKED`` so two reapers running at once split the work;
a document re-sent too often is set ``error`` here, in the same statement that counts its resends.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from pipeline.jobs.store import JobStore


@dataclass(slots=True)
class LostWork:
    """Claimed rows: documents to split again, pages to OCR again, aggregations and LLM chains to resume."""

    documents: list[uuid.UUID] = field(default_factory=list)
    documents_failed: int = 0
    aggregations: list[uuid.UUID] = field(default_factory=list)
    postprocessing: list[uuid.UUID] = field(default_factory=list)
    pages: list[tuple[uuid.UUID, int]] = field(default_factory=list)
    pages_given_up: list[tuple[uuid.UUID, int, int]] = field(default_factory=list)  # (document, page, resends)


async def claim_lost_work(
    store: JobStore, *, age_s: int, max_resends: int, batch: int, aggregation_age_s: int
) -> LostWork:
    """Claim work silent for longer than ``age_s`` (``aggregation_age_s`` for aggregations)."""
    lost = LostWork()
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
            float(age_s), max_resends, batch,
        )  # fmt: skip
        for row in rows:
            if row["status"] == "error":
                lost.documents_failed += 1
            else:
                lost.documents.append(row["id"])
        rows = await conn.fetch(
            """
            UPDATE documents SET updated_at = now()
             WHERE id IN (SELECT id FROM documents
                           WHERE status = 'aggregating' AND updated_at < now() - make_interval(secs => $1)
                           ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED)
            RETURNING id
            """,
            float(min(age_s, aggregation_age_s)), batch,
        )  # fmt: skip
        lost.aggregations.extend(r["id"] for r in rows)
        # Post-processing: silent (no status change, no new artifact) for longer than age_s, e.g. a
        # worker died between aggregation's commit and sending the LLM chain, or a step was lost.
        silent = await conn.fetch(
            """
            UPDATE documents SET updated_at = now()
             WHERE id IN (SELECT d.id FROM documents d
                           WHERE d.status = 'postprocessing'
                             AND greatest(d.updated_at, (SELECT max(a.created_at) FROM artifacts a
                                                          WHERE a.document_id = d.id))
                                 < now() - make_interval(secs => $1)
                           ORDER BY d.updated_at LIMIT $2 FOR UPDATE SKIP LOCKED)
            RETURNING id
            """,
            float(age_s), batch,
        )  # fmt: skip
        stale_pages = await conn.fetch(
            """
            SELECT p.document_id, p.page_no, p.resends FROM pages p JOIN documents d ON d.id = p.document_id
             WHERE d.status = 'processing_chunks' AND p.status IN ('pending', 'running')
               AND greatest(p.started_at, p.resent_at, d.updated_at) < now() - make_interval(secs => $1)
             ORDER BY d.updated_at LIMIT $2 FOR UPDATE OF p SKIP LOCKED
            """,
            float(age_s), batch,
        )  # fmt: skip
        resend = [(r["document_id"], r["page_no"]) for r in stale_pages if r["resends"] < max_resends]
        await conn.executemany(
            "UPDATE pages SET resends = resends + 1, resent_at = now() WHERE document_id = $1 AND page_no = $2",
            resend,
        )
        lost.pages.extend(resend)
        lost.postprocessing.extend(r["id"] for r in silent)
        lost.pages_given_up.extend(
            (r["document_id"], r["page_no"], r["resends"]) for r in stale_pages if r["resends"] >= max_resends
        )
    return lost
