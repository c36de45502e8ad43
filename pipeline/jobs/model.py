"""Job states and rows: what a document and its pages are, as the store reads and writes them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

import asyncpg

from pipeline.errors import NotFoundError

R = TypeVar("R")
__all__ = [
    "FINAL_DOCUMENT_STATES",
    "FINAL_PAGE_STATES",
    "Document",
    "DocumentStatus",
    "DonePage",
    "Page",
    "PageOutcome",
    "PageStatus",
    "parse_id",
]


class DocumentStatus(StrEnum):
    """Document states, as in the Celery systems pagemill replaces."""

    PENDING = "pending"
    QUEUED = "queued"
    EXTRACTING = "extracting"
    PROCESSING_CHUNKS = "processing_chunks"
    AGGREGATING = "aggregating"
    POSTPROCESSING = "postprocessing"
    COMPLETED = "completed"
    PARTIAL_ERROR = "partial_error"
    ERROR = "error"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        """True when no more work will happen on the document."""
        return self in FINAL_DOCUMENT_STATES


FINAL_DOCUMENT_STATES = frozenset(
    {DocumentStatus.COMPLETED, DocumentStatus.PARTIAL_ERROR, DocumentStatus.ERROR, DocumentStatus.CANCELLED}
)


class PageStatus(StrEnum):
    """Page states."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"

    @property
    def is_final(self) -> bool:
        """True for done, failed and skipped."""
        return self in FINAL_PAGE_STATES


FINAL_PAGE_STATES = frozenset({PageStatus.DONE, PageStatus.FAILED, PageStatus.SKIPPED})


@dataclass(frozen=True, slots=True)
class Document:
    """One row of ``documents``."""

    id: uuid.UUID
    status: DocumentStatus
    source_key: str
    filename: str | None
    kind: str | None
    sha256: str | None
    size_bytes: int | None
    page_count: int | None
    pages_finished: int
    lang_hints: tuple[str, ...]
    min_confidence: float | None
    dpi: int | None
    engine: str | None
    error: str | None
    options: dict[str, Any]
    result_key: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class Page:
    """One row of ``pages``."""

    document_id: uuid.UUID
    page_no: int
    status: PageStatus
    attempts: int
    text: str | None
    confidence: float | None
    result: dict[str, Any] | None
    error: str | None
    duration_ms: int | None
    resends: int = 0  # times the reaper re-sent this page's message


@dataclass(frozen=True, slots=True)
class DonePage:
    """One page's result for ``JobStore.finish_pages_done``."""

    page_no: int
    text: str
    confidence: float
    result: dict[str, Any]
    duration_ms: int


@dataclass(frozen=True, slots=True)
class PageOutcome:
    """What recording one page result did to the barrier."""

    counted: bool  # False: the page was already final (duplicate delivery), nothing changed
    pages_finished: int
    page_count: int
    closed: bool  # True in exactly one transaction per document: enqueue aggregation


def parse_id(value: str | uuid.UUID) -> uuid.UUID:
    """Parse a document id, raising NotFoundError (not ValueError) for malformed ids."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise NotFoundError(f"no document with id {str(value)[:80]!r}: ids are UUIDs") from None


def _from_row(kind: type[R], row: asyncpg.Record, **converted: Any) -> R:
    """A row model from the columns of the same names; ``converted`` gives the ones that need a type."""
    names = [f.name for f in fields(kind) if f.name not in converted]  # type: ignore[arg-type]
    return kind(**{name: row[name] for name in names}, **converted)


def _document(row: asyncpg.Record) -> Document:
    return _from_row(
        Document, row, status=DocumentStatus(row["status"]), lang_hints=tuple(row["lang_hints"] or ()),
        options=row["options"] or {},
    )  # fmt: skip


def _page(row: asyncpg.Record) -> Page:
    return _from_row(Page, row, status=PageStatus(row["status"]))
