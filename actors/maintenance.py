"""Periodic maintenance on the default queue, scheduled by one `periodiq actors.broker:setup_broker actors.maintenance` process.

periodiq has no lock and fires once at start for the current minute, so every job here is
safe to run at any time and twice at once: the reaper and the retention purge claim rows with
SKIP LOCKED, the daily summary replaces its day's row.

Schedules (the clock's local time): reaper every 5 minutes, purge hourly at :17, daily summary
at 00:05.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import dramatiq
import structlog
from periodiq import cron

import actors.ocr as ocr_actors
from actors import runtime
from actors.broker import DEFAULT
from actors.postprocess import start_pipeline
from pipeline.maintenance import purge_expired, reap
from pipeline.stats import record_day
from pipeline.storage import prune

log = structlog.get_logger(__name__)
# Days before today the daily summary recomputes on each run (covers skipped runs).
DAYS_RECOMPUTED = 3


@dramatiq.actor(
    actor_name="tasks.reap_lost_work", queue_name=DEFAULT, periodic=cron("*/5 * * * *"), max_retries=0
)
async def reap_lost_work() -> None:
    """Re-send the messages of documents that went silent; fail pages lost too often."""
    ctx = await runtime.context()
    settings = ctx.settings
    plan = await reap(ctx.store, age_s=settings.reaper_age_s, max_resends=settings.reaper_max_resends)
    messages = [ocr_actors.ocr_document.message(document_id=str(d)) for d in plan.documents]
    messages += [ocr_actors.ocr_page.message(document_id=str(d), page_no=n) for d, n in plan.pages]
    messages += [ocr_actors.aggregate_document.message(document_id=str(d)) for d in plan.aggregations]
    for message in messages:
        await asyncio.to_thread(dramatiq.get_broker().enqueue, message)
    if plan.postprocessing:
        for resume in plan.postprocessing:  # no step left: start_pipeline closes the document now
            await start_pipeline(str(resume.document_id), resume.steps, finish_as=resume.finish_as)


@dramatiq.actor(
    actor_name="tasks.purge_expired", queue_name=DEFAULT, periodic=cron("17 * * * *"), max_retries=0
)
async def purge_expired_documents() -> None:
    """Delete documents finished longer than PAGEMILL_RETENTION_DAYS ago (files and rows)."""
    ctx = await runtime.context()
    settings = ctx.settings
    if settings.retention_days == 0:
        return
    await purge_expired(
        ctx.store,
        ctx.storage,
        older_than=timedelta(days=settings.retention_days),
        batch_size=settings.retention_batch,
        max_batches=settings.retention_max_batches,
    )


@dramatiq.actor(
    actor_name="tasks.prune_source_cache", queue_name=DEFAULT, periodic=cron("*/30 * * * *"), max_retries=0
)
async def prune_source_cache() -> None:
    """Keep this machine's source-file cache within PAGEMILL_CACHE_MAX_AGE_HOURS and _MAX_BYTES."""
    settings = runtime.settings()
    removed, freed = await asyncio.to_thread(
        prune, settings.cache_dir, max_bytes=settings.cache_max_bytes, max_age_s=settings.cache_max_age_hours * 3600
    )
    log.info("cache.pruned", files=removed, bytes=freed, cache_dir=str(settings.cache_dir))


@dramatiq.actor(
    actor_name="tasks.daily_stats", queue_name=DEFAULT, periodic=cron("5 0 * * *"), max_retries=3
)
async def daily_stats() -> None:
    """Store the summaries of the last few UTC days and of today so far; log yesterday's.

    periodiq's cron runs in the clock's local time zone, and it drops a scheduled message that
    waited over a minute behind other work: recomputing a few days on every run means each UTC
    day is stored complete whatever that zone is, even after a skipped run.
    """
    ctx = await runtime.context()
    today = datetime.now(UTC).date()
    for back in range(DAYS_RECOMPUTED, -1, -1):
        await record_day(ctx.store, today - timedelta(days=back), log_line=back == 1)
