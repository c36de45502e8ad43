"""The job store on PostgreSQL: documents, pages, and the completion barrier.

The barrier (DESIGN.md, flow step 4) lives here: one transaction per page result, a
conditional UPDATE on the page, then a counter UPDATE on the document whose row lock
serialises the last pages. Exactly one transaction sees ``pages_finished = page_count`` and
flips the document to ``aggregating``; the caller enqueues aggregation after commit. Every
change of a document's or page's status goes through this class; reads for web, metrics and
stats go through ``JobStore.reads`` (``pipeline.jobs.reads``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg

from pipeline import migrations
from pipeline.errors import ConflictError, NotFoundError
from pipeline.jobs.model import (
    FINAL_DOCUMENT_STATES,
    FINAL_PAGE_STATES,
    Document,
    DocumentStatus,
    DonePage,
    Page,
    PageOutcome,
    PageStatus,
    _document,
    _page,
    parse_id,
)
from pipeline.jobs.pool import COMMAND_TIMEOUT_S, create_pool
from pipeline.jobs.reads import JobReads

# Final page states as a query parameter: the barrier's condition and the model say the same.
_FINAL_PAGES = sorted(s.value for s in FINAL_PAGE_STATES)


async def _advance_barrier(conn: asyncpg.Connection, document_id: uuid.UUID, counted: int) -> PageOutcome:
    """Count ``counted`` newly final pages; the transaction that reaches page_count closes it.

    The document row lock taken here serialises the last pages of a document: each waiter
    re-reads the incremented counter, so exactly one sees pages_finished = page_count.
    """
    if counted:
        row = await conn.fetchrow(
            """
            UPDATE documents SET pages_finished = pages_finished + $2, updated_at = now()
             WHERE id = $1 RETURNING pages_finished, page_count, status
            """,
            document_id,
            counted,
        )
    else:  # nothing newly final (a duplicate result): read the counters only
        row = await conn.fetchrow(
            "SELECT pages_finished, page_count, status FROM documents WHERE id = $1", document_id
        )
    if row is None:
        raise NotFoundError(f"no document with id {document_id}", document_id=str(document_id))
    closed = False
    if counted and row["pages_finished"] >= row["page_count"] and row["status"] == DocumentStatus.PROCESSING_CHUNKS:
        await conn.execute(
            "UPDATE documents SET status = 'aggregating', updated_at = now() WHERE id = $1", document_id
        )
        closed = True
    return PageOutcome(counted > 0, row["pages_finished"], row["page_count"] or 0, closed)


class JobStore:
    """Documents and pages on PostgreSQL through one asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool, schema: str) -> None:
        self.pool = pool
        self.schema = schema
        self.reads = JobReads(pool)

    @classmethod
    async def connect(
        cls,
        dsn: str,
        *,
        schema: str = "public",
        max_size: int = 4,
        migrate: bool = True,
        command_timeout_s: float = COMMAND_TIMEOUT_S,
    ) -> JobStore:
        """Open a pool whose connections use ``schema``; apply migrations unless told not to."""
        pool = await create_pool(dsn, schema=schema, max_size=max_size, command_timeout_s=command_timeout_s)
        store = cls(pool, schema)
        if migrate:
            await store.migrate()
        return store

    async def migrate(self) -> int:
        """Apply pending schema migrations; returns the schema version."""
        async with self.pool.acquire() as conn:
            return await migrations.apply(conn, self.schema)

    async def aclose(self) -> None:
        """Close the pool."""
        await self.pool.close()

    async def check(self) -> None:
        """Raise if PostgreSQL cannot be reached."""
        await self.pool.fetchval("SELECT 1")

    # --- documents -----------------------------------------------------------------------------
    async def create_document(
        self,
        *,
        document_id: uuid.UUID,
        source_key: str,
        filename: str | None = None,
        kind: str | None = None,
        sha256: str | None = None,
        size_bytes: int | None = None,
        lang_hints: Sequence[str] = (),
        min_confidence: float | None = None,
        dpi: int | None = None,
        options: dict[str, Any] | None = None,
        status: DocumentStatus = DocumentStatus.QUEUED,
    ) -> Document:
        """Insert a document; inserting the same id again returns the existing row (idempotent)."""
        row = await self.pool.fetchrow(
            """
            INSERT INTO documents (id, status, source_key, filename, kind, sha256, size_bytes,
                                   lang_hints, min_confidence, dpi, options)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
            ON CONFLICT (id) DO NOTHING
            RETURNING *
            """,
            document_id, status.value, source_key, filename, kind, sha256, size_bytes,
            list(lang_hints), min_confidence, dpi, options or {},
        )  # fmt: skip
        return _document(row) if row is not None else await self.get_document(document_id)

    async def get_document(self, document_id: uuid.UUID | str) -> Document:
        """Fetch a document or raise NotFoundError."""
        doc_id = parse_id(document_id)
        row = await self.pool.fetchrow("SELECT * FROM documents WHERE id = $1", doc_id)
        if row is None:
            raise NotFoundError(f"no document with id {doc_id}", document_id=str(doc_id))
        return _document(row)

    async def set_status(
        self,
        document_id: uuid.UUID,
        status: DocumentStatus,
        *,
        expect: Sequence[DocumentStatus] | None = None,
        error: str | None = None,
    ) -> bool:
        """Move a document to ``status`` if it is in one of ``expect`` (any state when None)."""
        final = status.is_final
        row = await self.pool.fetchrow(
            """
            UPDATE documents
               SET status = $2, error = COALESCE($3, error), updated_at = now(),
                   finished_at = CASE WHEN $4 THEN now() ELSE finished_at END
             WHERE id = $1 AND ($5::text[] IS NULL OR status = ANY($5::text[]))
            RETURNING 1
            """,
            document_id, status.value, error, final,
            None if expect is None else [s.value for s in expect],
        )  # fmt: skip
        return row is not None

    async def start_pages(
        self, document_id: uuid.UUID, *, kind: str, page_count: int, engine: str
    ) -> list[int]:
        """Record the page count, insert one row per page, move to ``processing_chunks``.

        Idempotent: on redelivery it inserts nothing new and returns the pages still pending,
        which are the ones whose messages may have been lost.
        """
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                """
                UPDATE documents SET kind = $2, page_count = $3, engine = $4, updated_at = now(),
                       status = CASE WHEN status IN ('queued', 'extracting', 'pending')
                                     THEN 'processing_chunks' ELSE status END
                 WHERE id = $1
                """,
                document_id, kind, page_count, engine,
            )  # fmt: skip
            await conn.execute(
                """
                INSERT INTO pages (document_id, page_no)
                SELECT $1, n FROM generate_series(1, $2) AS n
                ON CONFLICT DO NOTHING
                """,
                document_id,
                page_count,
            )
            rows = await conn.fetch(
                "SELECT page_no FROM pages WHERE document_id = $1 AND status IN ('pending', 'running') "
                "ORDER BY page_no",
                document_id,
            )
        return [r["page_no"] for r in rows]

    async def list_documents(
        self, *, status: DocumentStatus | None = None, limit: int = 50, offset: int = 0
    ) -> list[Document]:
        """Newest first, optionally only one status."""
        rows = await self.pool.fetch(
            "SELECT * FROM documents WHERE ($1::text IS NULL OR status = $1) "
            "ORDER BY created_at DESC, id LIMIT $2 OFFSET $3",
            None if status is None else status.value,
            limit,
            offset,
        )
        return [_document(r) for r in rows]

    async def finish_document(
        self, document_id: uuid.UUID, status: DocumentStatus, *, result_key: str | None, error: str | None
    ) -> bool:
        """Close an ``aggregating`` document with its final status (or ``postprocessing``).

        False if it was not aggregating."""
        row = await self.pool.fetchrow(
            """
            UPDATE documents SET status = $2, result_key = $3, error = $4, updated_at = now(),
                   finished_at = CASE WHEN $5 THEN now() ELSE finished_at END
             WHERE id = $1 AND status = 'aggregating'
            RETURNING 1
            """,
            document_id, status.value, result_key, error, status.is_final,
        )  # fmt: skip
        return row is not None

    # --- pages -----------------------------------------------------------------------------------
    async def set_callback_url(self, document_id: uuid.UUID, url: str) -> None:
        """Where the document's final status is POSTed (pipeline.callbacks)."""
        await self.pool.execute("UPDATE documents SET callback_url = $2 WHERE id = $1", document_id, url)

    async def fail_postprocessing(self, document_id: uuid.UUID, error: str) -> bool:
        """End a ``postprocessing`` document ``partial_error``, ``error`` appended to any it had.

        False when the document was not post-processing (cancelled, or already closed).
        """
        row = await self.pool.fetchrow(
            """
            UPDATE documents
               SET status = 'partial_error', updated_at = now(), finished_at = now(),
                   error = CASE WHEN error IS NULL OR error = '' THEN $2 ELSE error || '; ' || $2 END
             WHERE id = $1 AND status = 'postprocessing'
            RETURNING 1
            """,
            document_id, error,
        )  # fmt: skip
        return row is not None

    async def get_page(self, document_id: uuid.UUID, page_no: int) -> Page:
        """Fetch one page or raise NotFoundError."""
        row = await self.pool.fetchrow(
            "SELECT * FROM pages WHERE document_id = $1 AND page_no = $2", document_id, page_no
        )
        if row is None:
            raise NotFoundError(f"document {document_id} has no page {page_no}", document_id=str(document_id))
        return _page(row)

    async def list_pages(self, document_id: uuid.UUID) -> list[Page]:
        """All pages of a document, in page order."""
        rows = await self.pool.fetch("SELECT * FROM pages WHERE document_id = $1 ORDER BY page_no", document_id)
        return [_page(r) for r in rows]

    async def claim_page(self, document_id: uuid.UUID, page_no: int) -> bool:
        """Mark a page running (attempts + 1); False when it is already final."""
        row = await self.pool.fetchrow(
            """
            UPDATE pages SET status = 'running', attempts = attempts + 1, started_at = now()
             WHERE document_id = $1 AND page_no = $2 AND status IN ('pending', 'running')
            RETURNING 1
            """,
            document_id,
            page_no,
        )
        return row is not None

    async def finish_page(
        self,
        document_id: uuid.UUID,
        page_no: int,
        status: PageStatus,
        *,
        text: str | None = None,
        confidence: float | None = None,
        result: dict[str, Any] | None = None,
        error: str | None = None,
        duration_ms: int | None = None,
    ) -> PageOutcome:
        """Record a page's final state and advance the completion barrier, in one transaction."""
        if not status.is_final:
            raise ValueError(f"finish_page needs a final page status, not {status}")
        async with self.pool.acquire() as conn, conn.transaction():
            updated = await conn.fetchval(
                """
                UPDATE pages SET status = $3, text = $4, confidence = $5, result = $6, error = $7,
                       duration_ms = $8, finished_at = now()
                 WHERE document_id = $1 AND page_no = $2 AND status <> ALL($9::text[])
                RETURNING 1
                """,
                document_id, page_no, status.value, text, confidence, result, error, duration_ms, _FINAL_PAGES,
            )  # fmt: skip
            return await _advance_barrier(conn, document_id, 0 if updated is None else 1)

    async def finish_pages_done(self, document_id: uuid.UUID, pages: Sequence[DonePage]) -> PageOutcome:
        """Record many pages ``done`` at once (attempt counted) and advance the barrier by them.

        For pages finished without a message each (text layers read in the split step): one
        transaction, one commit, instead of two round trips and a commit per page. Pages already
        final are left alone and not counted, as in ``finish_page``.
        """
        async with self.pool.acquire() as conn, conn.transaction():
            counted = await conn.fetchval(
                """
                WITH done AS (
                    UPDATE pages p SET status = 'done', attempts = p.attempts + 1, text = d.text,
                           confidence = d.confidence, result = d.result, error = NULL,
                           duration_ms = d.duration_ms, started_at = now(), finished_at = now()
                      FROM unnest($2::int[], $3::text[], $4::float8[], $5::jsonb[], $6::int[])
                           AS d(page_no, text, confidence, result, duration_ms)
                     WHERE p.document_id = $1 AND p.page_no = d.page_no AND p.status IN ('pending', 'running')
                    RETURNING 1
                )
                SELECT count(*) FROM done
                """,
                document_id,
                [p.page_no for p in pages],
                [p.text for p in pages],
                [p.confidence for p in pages],
                [p.result for p in pages],
                [p.duration_ms for p in pages],
            )
            return await _advance_barrier(conn, document_id, counted)

    async def page_counts(self, document_id: uuid.UUID) -> dict[PageStatus, int]:
        """How many pages are in each state."""
        return await self.reads.pages_by_status(document_id)

    # --- reprocessing ------------------------------------------------------------------------------
    async def reset_pages(self, document_id: uuid.UUID, *, only_failed: bool) -> list[int]:
        """Put a finished document back to ``queued``, its pages (all, or only failed/skipped) pending.

        Returns the page numbers reset; the caller then sends ``tasks.ocr_document``, whose
        ``start_pages`` returns every page still pending. ConflictError when the document is not
        in a final state, or ``only_failed`` finds nothing to redo.
        """
        final = [s.value for s in FINAL_DOCUMENT_STATES]
        async with self.pool.acquire() as conn, conn.transaction():
            status = await conn.fetchval("SELECT status FROM documents WHERE id = $1", document_id)
            if status is None:
                raise NotFoundError(f"no document with id {document_id}", document_id=str(document_id))
            if status not in final:
                raise ConflictError(
                    f"document {document_id} is {status}; reprocess it once it has finished, or cancel it first",
                    document_id=str(document_id),
                )
            # Pages are locked before the document row, the order finish_page uses, so a late
            # result for a page of a cancelled document waits for this reset instead of deadlocking;
            # it then finds the page pending and counts it again through the barrier.
            reset = await conn.fetch(
                """
                UPDATE pages SET status = 'pending', attempts = 0, text = NULL, confidence = NULL,
                       result = NULL, error = NULL, duration_ms = NULL, started_at = NULL, finished_at = NULL
                 WHERE document_id = $1 AND status = ANY($3::text[])
                   AND (NOT $2 OR status <> 'done')
                RETURNING page_no
                """,
                document_id, only_failed, _FINAL_PAGES,
            )  # fmt: skip
            # The barrier counter must equal the number of final pages, whatever was reset.
            row = await conn.fetchrow(
                """
                UPDATE documents SET status = 'queued', error = NULL, result_key = NULL, finished_at = NULL,
                       updated_at = now(),
                       pages_finished = (SELECT count(*) FROM pages
                                          WHERE document_id = $1 AND status = ANY($3::text[]))
                 WHERE id = $1 AND status = ANY($2::text[])
                RETURNING page_count, pages_finished
                """,
                document_id, final, _FINAL_PAGES,
            )  # fmt: skip
            if row is None:
                raise ConflictError(f"document {document_id} changed state during the reset; try again")
            nothing_to_do = row["page_count"] is not None and row["pages_finished"] >= row["page_count"]
            if only_failed and not reset and nothing_to_do:
                # Raising rolls the status change back.
                raise ConflictError(
                    f"document {document_id} has no failed pages; reprocess without only_failed to redo every page",
                    document_id=str(document_id),
                )
        return sorted(r["page_no"] for r in reset)
