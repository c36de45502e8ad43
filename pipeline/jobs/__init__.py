"""Job records on PostgreSQL: states and rows (``model``), the store that changes them (``store``)
and the read models web, metrics and stats read them through (``reads``, as ``JobStore.reads``).

``from pipeline.jobs import JobStore, DocumentStatus, ...`` is the way in; the submodules say
where each part lives.
"""

from pipeline.jobs import model
from pipeline.jobs.model import *  # the states and rows (model.__all__) are the package's names
from pipeline.jobs.pool import COMMAND_TIMEOUT_S, STATEMENT_TIMEOUT_MS
from pipeline.jobs.reads import DayActivity, DocumentTick, JobReads, LatencyBuckets, PageState
from pipeline.jobs.store import JobStore

__all__ = [
    "COMMAND_TIMEOUT_S",
    "STATEMENT_TIMEOUT_MS",
    "DayActivity",
    "DocumentTick",
    "JobReads",
    "JobStore",
    "LatencyBuckets",
    "PageState",
]
__all__ += model.__all__
