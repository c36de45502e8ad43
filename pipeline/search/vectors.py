"""pgvector on the job store's PostgreSQL: is it there, and the HNSW index per vector size.

Migration 6 creates the extension (in ``public``, once per database) and ``chunks.embedding``
where it can. ``vector_support`` checks at run time, adding the column if pgvector was installed
after migrating, and otherwise raises ``VectorUnavailableError`` with a reason that names the
extension: the ``embeddings`` step fails with it, ``/api/search`` answers it as 501, and
``pagemill doctor`` prints it. Full-text search needs none of this.

``embedding`` has no fixed size (models differ); each size gets its own partial HNSW index on
``embedding::vector(N)`` for rows with ``dims = N``, made when the first vectors of that size
are stored. Queries name the same expression and predicate, so the planner can use it.
"""

from __future__ import annotations

import weakref
import zlib
from dataclasses import dataclass

from pipeline.errors import PagemillError
from pipeline.jobs import JobStore
from pipeline.migrations import ENABLE_VECTOR

# HNSW graph parameters (pgvector's defaults are m=16, ef_construction=64): benchmarks/search.py
# measured recall@10 >= 0.95 at ef_search 100 with these on 100,000 chunks of 768 dimensions.
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64
# pgvector's HNSW indexes at most 2,000 dimensions of type vector.
MAX_INDEXED_DIMS = 2000

MISSING_REASON = (
    "the PostgreSQL extension pgvector ('vector') is not installed on this database server, so "
    "documents cannot be embedded or searched by meaning: install it (Debian/Ubuntu package "
    "postgresql-<version>-pgvector, or a managed PostgreSQL that offers pgvector; the embedded "
    "pgserver has it) and restart pagemill. Full-text search (mode=text) works without it"
)
NOT_CREATED_REASON = (
    "the PostgreSQL extension pgvector ('vector') is available but pagemill may not create it: "
    "have a superuser run CREATE EXTENSION vector SCHEMA public; in this database, then restart "
    "pagemill. Full-text search (mode=text) works without it"
)

_known: weakref.WeakKeyDictionary[JobStore, VectorSupport] = weakref.WeakKeyDictionary()
_indexed: weakref.WeakKeyDictionary[JobStore, set[int]] = weakref.WeakKeyDictionary()


class VectorUnavailableError(PagemillError, http_status=501, code="pgvector_missing"):
    """The PostgreSQL server lacks the pgvector extension (or pagemill may not create it)."""


@dataclass(frozen=True, slots=True)
class VectorSupport:
    """Where pgvector lives in this database, and the SQL names that follow from it."""

    schema: str
    version: str

    def vector(self, dims: int | None = None) -> str:
        """The vector type, schema-qualified (the job store's search_path holds only its own schema)."""
        return f'"{self.schema}".vector' + (f"({int(dims)})" if dims else "")

    @property
    def cosine_distance(self) -> str:
        """The cosine distance operator."""
        return f'OPERATOR("{self.schema}".<=>)'

    @property
    def cosine_ops(self) -> str:
        """The HNSW operator class for cosine distance."""
        return f'"{self.schema}".vector_cosine_ops'


async def _probe(store: JobStore) -> tuple[str | None, str | None, bool, bool]:
    row = await store.pool.fetchrow(
        """
        SELECT n.nspname AS schema, e.extversion AS version,
               EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector') AS available,
               EXISTS (SELECT 1 FROM information_schema.columns
                        WHERE table_schema = current_schema() AND table_name = 'chunks'
                          AND column_name = 'embedding') AS has_column
          FROM (SELECT 1) one
          LEFT JOIN pg_extension e ON e.extname = 'vector'
          LEFT JOIN pg_namespace n ON n.oid = e.extnamespace
        """
    )
    assert row is not None
    return row["schema"], row["version"], row["available"], row["has_column"]


async def pgvector_status(store: JobStore) -> tuple[bool, str | None]:
    """Whether the server offers pgvector, and the version installed in this database (None if not)."""
    _schema, version, available, _has_column = await _probe(store)
    return available, version


async def vector_support(store: JobStore) -> VectorSupport:
    """pgvector as this job store can use it, or VectorUnavailableError saying why not."""
    known = _known.get(store)
    if known is not None:
        return known
    schema, version, available, has_column = await _probe(store)
    if available and not (schema and has_column):
        async with store.pool.acquire() as conn, conn.transaction():
            await conn.execute(ENABLE_VECTOR)  # installed since migrating: create what migration 6 skipped
        schema, version, available, has_column = await _probe(store)
    if not available:
        raise VectorUnavailableError(MISSING_REASON)
    if not (schema and has_column):
        raise VectorUnavailableError(NOT_CREATED_REASON)
    support = VectorSupport(schema=schema, version=version or "?")
    _known[store] = support
    return support


async def ensure_index(store: JobStore, support: VectorSupport, dims: int) -> bool:
    """Make the HNSW cosine index for vectors of ``dims`` dimensions if it is missing; True if made."""
    if dims > MAX_INDEXED_DIMS:
        return False  # searched exactly: pgvector's HNSW cannot index more dimensions
    if dims in _indexed.setdefault(store, set()):
        return False
    name = f"chunks_embedding_{int(dims)}"
    async with store.pool.acquire() as conn, conn.transaction():
        # Two workers storing the first vectors of a size at once would race on CREATE INDEX.
        await conn.execute("SELECT pg_advisory_xact_lock($1)", zlib.crc32(f"pagemill-chunks-index:{store.schema}".encode()))
        exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f'"{store.schema}".{name}')
        if not exists:
            await conn.execute(
                f"CREATE INDEX {name} ON chunks USING hnsw (({index_expression(support, dims)}) {support.cosine_ops}) "
                f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION}) WHERE dims = {int(dims)}"
            )
    _indexed[store].add(dims)
    return not exists


def index_expression(support: VectorSupport, dims: int) -> str:
    """The indexed expression; a query must repeat it verbatim for the index to serve it."""
    return f"embedding::{support.vector(dims)}"
