"""Job records on PostgreSQL: states and rows (``model``) and the store that changes them (``store``).

``from pipeline.jobs import JobStore, DocumentStatus, ...`` is the way in; the submodules say
where each part lives.
"""

from pipeline.jobs.model import (
    FINAL_DOCUMENT_STATES,
    Document,
    DocumentStatus,
    DonePage,
    Page,
    PageOutcome,
    PageStatus,
    parse_id,
)
from pipeline.jobs.pool import COMMAND_TIMEOUT_S, STATEMENT_TIMEOUT_MS
from pipeline.jobs.store import JobStore

__all__ = [
    "COMMAND_TIMEOUT_S",
    "FINAL_DOCUMENT_STATES",
    "STATEMENT_TIMEOUT_MS",
    "Document",
    "DocumentStatus",
    "DonePage",
    "JobStore",
    "Page",
    "PageOutcome",
    "PageStatus",
    "parse_id",
]
