"""Job records on PostgreSQL: states and rows (``model``), the store that changes them (``store``)
and the read models web, metrics and stats read them through (``reads``, as ``JobStore.reads``).

``from pipeline.jobs import JobStore, DocumentStatus, ...`` is the way in; the submodules say
where each part lives.
"""

from pipeline.jobs.model import (
    FINAL_DOCUMENT_STATES,
    FINAL_PAGE_STATES,
    Document,
    DocumentStatus,
    DonePage,
    Page,
    PageOutcome,
    PageStatus,
    parse_id,
)
from pipeline.jobs.pool import COMMAND_TIMEOUT_S, STATEMENT_TIMEOUT_MS
from pipeline.jobs.reads import DayActivity, DocumentTick, JobReads, LatencyBuckets, PageState
from pipeline.jobs.store import JobStore

__all__ = [
    "COMMAND_TIMEOUT_S",
    "FINAL_DOCUMENT_STATES",
    "FINAL_PAGE_STATES",
    "STATEMENT_TIMEOUT_MS",
    "DayActivity",
    "Document",
    "DocumentStatus",
    "DocumentTick",
    "DonePage",
    "JobReads",
    "JobStore",
    "LatencyBuckets",
    "Page",
    "PageOutcome",
    "PageState",
    "PageStatus",
    "parse_id",
]
