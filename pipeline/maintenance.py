"""Periodic maintenance steps: the reaper that finds lost work, and the retention purge.

Messages can be lost in ways retries never see: a worker killed between the barrier's commit
and the aggregation enqueue, a Redis restart without AOF, a message purged by hand. The reaper
finds documents silent for longer than ``reaper_age_s`` and says what to re-send; every re-sent
message is idempotent, so a false positive costs only duplicate work. Rows are claimed with
``FOR UPDATE SKIP LOCKED`` so two reapers running at once split the work instead of doubling it.

The purge deletes documents that finished longer than the retention age ago: their storage
objects first (everything under ``documents/<id>/``), then their rows (pages, artifacts and
callback deliveries go with them by ``ON DELETE CASCADE``), one bounded batch per transaction.
The batch's rows stay locked (``FOR UPDATE SKIP LOCKED``) until the rows are gone, so a second
purge takes other documents and a reprocess request waits, then finds nothing. The SQL of both
lives in the job store package (``pipeline.jobs.recovery``, ``pipeline.jobs.retention``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta

import structlog

from pipeline.artifacts import list_artifacts
from pipeline.documents import postprocess_steps
from pipeline.jobs import DocumentStatus, JobStore, PageStatus
from pipeline.jobs.recovery import claim_lost_work
from pipeline.jobs.retention import claim_expired
from pipeline.storage import Storage

log = structlog.get_logger(__name__)

# Documents in `aggregating` are re-sent sooner: aggregation takes seconds, not minutes.
AGGREGATION_AGE_S = 120
# Rows handled per run, so one run stays short whatever the backlog.
BATCH = 500


@dataclass(frozen=True, slots=True)
class Resume:
    """A post-processing document whose chain went silent: the steps still missing an artifact,
    and the status its last step sets (what aggregation computed)."""

    document_id: uuid.UUID
    steps: list[str]
    finish_as: DocumentStatus


@dataclass(slots=True)
class ReapPlan:
    """What the reaper found: messages to re-send, and pages it gave up on."""

    documents: list[uuid.UUID] = field(default_factory=list)  # re-send tasks.ocr_document
    pages: list[tuple[uuid.UUID, int]] = field(default_factory=list)  # re-send tasks.ocr_page
    aggregations: list[uuid.UUID] = field(default_factory=list)  # re-send tasks.aggregate_document
    postprocessing: list[Resume] = field(default_factory=list)  # re-send the missing LLM steps
    pages_failed: int = 0
    documents_failed: int = 0


async def reap(store: JobStore, *, age_s: int, max_resends: int) -> ReapPlan:
    """Find lost work; mark what was lost too often as failed. The caller sends the plan."""
    plan = ReapPlan()
    lost = await claim_lost_work(
        store, age_s=age_s, max_resends=max_resends, batch=BATCH, aggregation_age_s=AGGREGATION_AGE_S
    )
    plan.documents.extend(lost.documents)
    plan.documents_failed = lost.documents_failed
    plan.aggregations.extend(lost.aggregations)
    plan.pages.extend(lost.pages)
    silent = lost.postprocessing
    stale_pages = lost.pages_given_up
    for document_id in silent:
        plan.postprocessing.append(await _resume(store, document_id))
    # Pages lost too often fail through the barrier (outside the claim transaction: one each).
    for document_id, page_no, resends in stale_pages:
        outcome = await store.finish_page(
            document_id, page_no, PageStatus.FAILED,
            error=f"the page's message was lost {resends + 1} times (no worker finished it)",
        )  # fmt: skip
        plan.pages_failed += 1
        if outcome.closed:
            plan.aggregations.append(document_id)
    if (
        plan.documents or plan.pages or plan.aggregations or plan.postprocessing
        or plan.pages_failed or plan.documents_failed
    ):  # fmt: skip
        log.warning(
            "reaper.found_lost_work",
            documents=len(plan.documents),
            pages=len(plan.pages),
            aggregations=len(plan.aggregations),
            postprocessing=len(plan.postprocessing),
            pages_failed=plan.pages_failed,
            documents_failed=plan.documents_failed,
        )
    return plan


async def _resume(store: JobStore, document_id: uuid.UUID) -> Resume:
    """What is left of a post-processing document's LLM chain (steps already stored are kept)."""
    doc = await store.get_document(document_id)
    done = {a.kind for a in await list_artifacts(store, doc.id)}
    failed = (await store.page_counts(doc.id))[PageStatus.FAILED]
    finish_as = DocumentStatus.PARTIAL_ERROR if failed else DocumentStatus.COMPLETED
    return Resume(doc.id, [s for s in postprocess_steps(doc) if s not in done], finish_as)


@dataclass(frozen=True, slots=True)
class PurgeResult:
    """What one purge removed."""

    documents: tuple[uuid.UUID, ...]
    objects: int  # storage objects deleted
    batches: int


def document_prefix(document_id: uuid.UUID) -> str:
    """The storage prefix that holds everything of one document."""
    return f"documents/{document_id}/"


async def purge_expired(
    store: JobStore, storage: Storage, *, older_than: timedelta, batch_size: int, max_batches: int
) -> PurgeResult:
    """Delete documents final for longer than ``older_than``, at most ``max_batches`` batches per call."""
    purged: list[uuid.UUID] = []
    objects = batches = 0
    while batches < max_batches:
        ids, removed = await _purge_batch(store, storage, older_than=older_than, batch_size=batch_size)
        if not ids:
            break
        batches += 1
        purged.extend(ids)
        objects += removed
        if len(ids) < batch_size:
            break
    if purged:
        log.info("retention.purged", documents=len(purged), objects=objects, batches=batches,
                 older_than_s=older_than.total_seconds())  # fmt: skip
    return PurgeResult(tuple(purged), objects, batches)


async def _purge_batch(
    store: JobStore, storage: Storage, *, older_than: timedelta, batch_size: int
) -> tuple[list[uuid.UUID], int]:
    async with claim_expired(store, older_than=older_than, batch_size=batch_size) as batch:
        if not batch.documents:
            return [], 0
        ids = [d.id for d in batch.documents]
        # Storage first: if it fails the transaction rolls back and the next run tries again;
        # rows deleted first would leave objects nothing points to any more.
        removed = 0
        for doc_id in ids:
            removed += await storage.delete_prefix(document_prefix(doc_id))
        await batch.delete()
        # A source a Celery producer stored elsewhere (``storage_key``) goes too, unless another
        # document still reads it.
        outside = {d.source_key for d in batch.documents if not d.source_key.startswith(document_prefix(d.id))}
        if outside:
            for key in sorted(outside - await batch.sources_in_use(outside)):
                if await storage.exists(key):
                    await storage.delete(key)
                    removed += 1
    return ids, removed
