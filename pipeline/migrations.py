"""Schema migrations for the job store, applied in order at start-up.

Each entry runs once, in its own transaction, recorded in ``schema_migrations``. A
transaction-level advisory lock makes concurrent start-ups (web + several workers) safe:
the second process waits, then finds nothing left to do. Append new migrations; never edit
an applied one.
"""

from __future__ import annotations

import zlib

import asyncpg

# Creates pgvector's extension (in ``public``, once per database) and the ``chunks.embedding``
# column where the server has the extension and lets us create it; does nothing otherwise. Run
# by migration 6 and again at run time (pgvector installed after migrating). A database-wide
# advisory lock: schemas migrating at once would otherwise race on CREATE EXTENSION.
ENABLE_VECTOR = """
DO $pagemill$
DECLARE
    ext_schema name;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector') THEN
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('pagemill-pgvector'));
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector') THEN
        BEGIN
            CREATE EXTENSION vector SCHEMA public;
        EXCEPTION WHEN insufficient_privilege OR undefined_file OR invalid_schema_name OR feature_not_supported THEN
            RAISE NOTICE 'pagemill: pgvector is available but could not be created: %', SQLERRM;
            RETURN;
        END;
    END IF;
    SELECT n.nspname INTO ext_schema
      FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'vector';
    EXECUTE format('ALTER TABLE chunks ADD COLUMN IF NOT EXISTS embedding %I.vector', ext_schema);
END
$pagemill$;
"""

MIGRATIONS: tuple[str, ...] = (
    # 1: documents and pages
    """
    CREATE TABLE documents (
        id             uuid PRIMARY KEY,
        status         text NOT NULL CHECK (status IN ('pending', 'queued', 'extracting',
                           'processing_chunks', 'aggregating', 'postprocessing', 'completed',
                           'partial_error', 'error', 'cancelled')),
        source_key     text NOT NULL,
        filename       text,
        kind           text,
        sha256         text,
        size_bytes     bigint,
        page_count     integer CHECK (page_count >= 0),
        pages_finished integer NOT NULL DEFAULT 0,
        lang_hints     text[] NOT NULL DEFAULT '{}',
        min_confidence real,
        dpi            integer,
        engine         text,
        error          text,
        options        jsonb NOT NULL DEFAULT '{}',
        result_key     text,
        created_at     timestamptz NOT NULL DEFAULT now(),
        updated_at     timestamptz NOT NULL DEFAULT now(),
        finished_at    timestamptz
    );
    CREATE INDEX documents_status_updated ON documents (status, updated_at);
    CREATE INDEX documents_created ON documents (created_at DESC);

    CREATE TABLE pages (
        document_id uuid NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
        page_no     integer NOT NULL CHECK (page_no >= 1),
        status      text NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'running', 'done', 'failed', 'skipped')),
        attempts    integer NOT NULL DEFAULT 0,
        text        text,
        confidence  real,
        result      jsonb,
        error       text,
        duration_ms integer,
        started_at  timestamptz,
        finished_at timestamptz,
        PRIMARY KEY (document_id, page_no)
    );
    """,
    # 2: the reaper's bookkeeping (how often work was re-sent, and when)
    """
    ALTER TABLE documents ADD COLUMN resends integer NOT NULL DEFAULT 0;
    ALTER TABLE pages ADD COLUMN resends integer NOT NULL DEFAULT 0;
    ALTER TABLE pages ADD COLUMN resent_at timestamptz;
    CREATE INDEX pages_unfinished ON pages (document_id) WHERE status IN ('pending', 'running');
    """,
    # 3: LLM products (summary, flashcards, quiz, diagnostics), one row per document and kind
    """
    CREATE TABLE artifacts (
        document_id uuid NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
        kind        text NOT NULL,
        data        jsonb NOT NULL,
        tokens      integer NOT NULL DEFAULT 0 CHECK (tokens >= 0),
        created_at  timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (document_id, kind)
    );
    """,
    # 4: completion callbacks: the URL given at upload, one delivery record per final state
    """
    ALTER TABLE documents ADD COLUMN callback_url text;
    CREATE TABLE callback_deliveries (
        document_id     uuid NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
        status          text NOT NULL,
        attempts        integer NOT NULL DEFAULT 0,
        claimed_until   timestamptz,
        delivered_at    timestamptz,
        response_status integer,
        last_error      text,
        PRIMARY KEY (document_id, status)
    );
    """,
    # 5: the daily summary (documents by state, pages/s, failure reasons, tokens), one row per UTC day
    """
    CREATE TABLE daily_stats (
        day         date PRIMARY KEY,
        summary     jsonb NOT NULL,
        computed_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX pages_finished_at ON pages (finished_at);
    CREATE INDEX documents_finished_at ON documents (finished_at);
    """,
    # 6: search: each document's text in chunks along reading order, full-text indexed; their
    # vectors (pgvector) in ``embedding``, added only where the extension can be had, so a server
    # without it still migrates (pipeline.search.vectors adds it later if pgvector appears).
    """
    CREATE TABLE chunks (
        document_id uuid NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
        chunk_no    integer NOT NULL CHECK (chunk_no >= 0),
        page_no     integer NOT NULL CHECK (page_no >= 1),
        char_start  integer NOT NULL CHECK (char_start >= 0),
        char_end    integer NOT NULL CHECK (char_end >= char_start),
        text        text NOT NULL,
        tsv         tsvector GENERATED ALWAYS AS (to_tsvector('simple', text)) STORED,
        dims        integer CHECK (dims > 0),
        PRIMARY KEY (document_id, chunk_no)
    );
    CREATE INDEX chunks_tsv ON chunks USING gin (tsv);
    """
    + ENABLE_VECTOR,
)


async def apply(conn: asyncpg.Connection, schema: str) -> int:
    """Bring ``schema`` up to the latest version; returns that version."""
    lock_key = zlib.crc32(f"pagemill-migrations:{schema}".encode())
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_key)
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute(
            f'CREATE TABLE IF NOT EXISTS "{schema}".schema_migrations '
            "(version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        current = await conn.fetchval(f'SELECT coalesce(max(version), 0) FROM "{schema}".schema_migrations')
        await conn.execute(f'SET LOCAL search_path TO "{schema}"')
        for version, sql in enumerate(MIGRATIONS[current:], start=current + 1):
            await conn.execute(sql)
            await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
    return len(MIGRATIONS)
