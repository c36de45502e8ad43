"""Artifacts: what the LLM steps made for a document, one row per (document, kind) in PostgreSQL."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pipeline.errors import NotFoundError
from pipeline.jobs import JobStore


@dataclass(frozen=True, slots=True)
class Artifact:
    """One row of ``artifacts``."""

    document_id: uuid.UUID
    kind: str
    data: dict[str, Any]
    tokens: int
    created_at: datetime


async def save_artifact(
    store: JobStore, document_id: uuid.UUID, kind: str, data: dict[str, Any], *, tokens: int
) -> Artifact:
    """Insert or replace the ``kind`` artifact of a document (a redelivered step overwrites)."""
    row = await store.pool.fetchrow(
        """
        INSERT INTO artifacts (document_id, kind, data, tokens) VALUES ($1, $2, $3, $4)
        ON CONFLICT (document_id, kind)
        DO UPDATE SET data = EXCLUDED.data, tokens = EXCLUDED.tokens, created_at = now()
        RETURNING *
        """,
        document_id, kind, data, tokens,
    )  # fmt: skip
    return Artifact(**dict(row))


async def get_artifact(store: JobStore, document_id: uuid.UUID, kind: str) -> Artifact:
    """The ``kind`` artifact of a document, or NotFoundError."""
    row = await store.pool.fetchrow(
        "SELECT * FROM artifacts WHERE document_id = $1 AND kind = $2", document_id, kind
    )
    if row is None:
        raise NotFoundError(f"document {document_id} has no {kind} artifact", document_id=str(document_id))
    return Artifact(**dict(row))


async def list_artifacts(store: JobStore, document_id: uuid.UUID) -> list[Artifact]:
    """Every artifact of a document, oldest first."""
    rows = await store.pool.fetch(
        "SELECT * FROM artifacts WHERE document_id = $1 ORDER BY created_at, kind", document_id
    )
    return [Artifact(**dict(r)) for r in rows]


async def document_tokens(store: JobStore, document_id: uuid.UUID) -> int:
    """Tokens the LLM steps used for a document, all artifacts together."""
    total = await store.pool.fetchval(
        "SELECT coalesce(sum(tokens), 0) FROM artifacts WHERE document_id = $1", document_id
    )
    return int(total)


async def tokens_by_kind(store: JobStore, start: datetime, end: datetime) -> dict[str, int]:
    """LLM tokens per artifact kind, artifacts made in ``[start, end)`` (the daily summary)."""
    rows = await store.pool.fetch(
        "SELECT kind, sum(tokens) AS n FROM artifacts WHERE created_at >= $1 AND created_at < $2 "
        "GROUP BY kind ORDER BY kind",
        start, end,
    )  # fmt: skip
    return {r["kind"]: int(r["n"]) for r in rows}


async def recent_tokens_by_kind(store: JobStore, *, window_s: float) -> dict[str, int]:
    """LLM tokens per artifact kind, artifacts made in the last ``window_s`` seconds (metrics)."""
    # The window ends at the database's clock, like the other metrics reads, not this process's.
    rows = await store.pool.fetch(
        "SELECT kind, sum(tokens) AS n FROM artifacts WHERE created_at > now() - make_interval(secs => $1) "
        "GROUP BY kind ORDER BY kind",
        float(window_s),
    )
    return {r["kind"]: int(r["n"]) for r in rows}
