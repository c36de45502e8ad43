"""Expired documents, claimed and deleted in one transaction: what the retention purge removes.

``pipeline.maintenance.purge_expired`` deletes a batch's storage objects while the batch's rows
stay locked (``FOR UPDATE SKIP LOCKED``), then the rows; a second purge takes other documents,
and a reprocess request waits, then finds nothing. If deleting storage fails, leaving the block
rolls the transaction back and the rows stay for the next run.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

import asyncpg

from pipeline.jobs.model import FINAL_DOCUMENT_STATES
from pipeline.jobs.store import JobStore

_FINAL_DOCUMENTS = sorted(s.value for s in FINAL_DOCUMENT_STATES)


@dataclass(frozen=True, slots=True)
class ExpiredDocument:
    """A document whose retention ran out, and where its source file is stored."""

    id: uuid.UUID
    source_key: str


@dataclass(frozen=True, slots=True)
class ExpiredBatch:
    """Locked expired documents; delete their rows with :meth:`delete` before the block ends."""

    documents: tuple[ExpiredDocument, ...]
    _conn: asyncpg.Connection

    async def delete(self) -> None:
        """Delete the batch's rows (pages, artifacts and callback deliveries go by ``ON DELETE CASCADE``)."""
        await self._conn.execute("DELETE FROM documents WHERE id = ANY($1::uuid[])", [d.id for d in self.documents])

    async def sources_in_use(self, keys: Collection[str]) -> set[str]:
        """The ``keys`` that some document still reads as its source."""
        rows = await self._conn.fetch(
            "SELECT DISTINCT source_key FROM documents WHERE source_key = ANY($1::text[])", list(keys)
        )
        return {r["source_key"] for r in rows}


@asynccontextmanager
async def claim_expired(store: JobStore, *, older_than: timedelta, batch_size: int) -> AsyncIterator[ExpiredBatch]:
    """Lock up to ``batch_size`` documents final for longer than ``older_than``, oldest first."""
    async with store.pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            """
            SELECT id, source_key FROM documents
             WHERE status = ANY($1::text[]) AND coalesce(finished_at, updated_at) < now() - $2::interval
             ORDER BY coalesce(finished_at, updated_at) LIMIT $3 FOR UPDATE SKIP LOCKED
            """,
            _FINAL_DOCUMENTS, older_than, batch_size,
        )  # fmt: skip
        yield ExpiredBatch(tuple(ExpiredDocument(r["id"], r["source_key"]) for r in rows), conn)
