"""Hybrid search: documents ranked by their best chunks, vector and full-text ranks fused.

The query is embedded once; pgvector's HNSW index gives the chunks nearest by cosine distance,
PostgreSQL full-text search (``websearch_to_tsquery('simple', q)`` on ``chunks.tsv``) the chunks
holding the query's exact words (invoice numbers, names: what a vector blurs). Reciprocal rank
fusion (Cormack et al., SIGIR 2009) adds ``1 / (RRF_K + rank)`` over both lists, so neither score
scale has to be calibrated against the other. A document scores as its best chunk and shows up
to ``MATCHES_PER_DOCUMENT`` of them, each with its page, character span and a snippet.

Filters (status, tag) apply inside both candidate lists; the HNSW scan returns at most
``hnsw.ef_search`` rows before filtering, so a very selective filter may miss vector matches
that an exact scan would find (pgvector's documented trade-off).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import asyncpg

from pipeline.errors import BadInputError
from pipeline.jobs import DocumentStatus, JobStore
from pipeline.search.vectors import MAX_INDEXED_DIMS, VectorSupport, index_expression, vector_support

# Reciprocal rank fusion constant (60 in the paper and most systems).
RRF_K = 60
# Candidate chunks taken from each list, per document asked for (and at least / at most).
CANDIDATES_PER_RESULT, MIN_CANDIDATES, MAX_CANDIDATES = 10, 50, 400
MATCHES_PER_DOCUMENT = 3
SNIPPET_CHARS = 240
MAX_QUERY_CHARS = 500
MAX_LIMIT = 50
MAX_TAG_CHARS = 64

# Embeds one query text (the web app and CLI pass their LLM client's embed).
EmbedQuery = Callable[[str], Awaitable[list[float]]]
_WORD = re.compile(r"\w+")


class SearchMode(StrEnum):
    """Which rankings a search uses."""

    HYBRID = "hybrid"
    VECTOR = "vector"
    TEXT = "text"


class SearchQueryError(BadInputError, http_status=400, code="bad_request"):
    """A search parameter is wrong (empty query, limit out of range, unknown status)."""


@dataclass(frozen=True, slots=True)
class Match:
    """One chunk that matched: where it is and why it ranks."""

    chunk_no: int
    page_no: int
    char_start: int
    char_end: int
    snippet: str
    score: float
    vector_rank: int | None
    text_rank: int | None
    similarity: float | None  # cosine similarity to the query, when ranked by vector

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "page": self.page_no,
            "chunk": self.chunk_no,
            "char_start": self.char_start,
            "char_end": self.char_end,
            "snippet": self.snippet,
            "score": round(self.score, 6),
            "vector_rank": self.vector_rank,
            "text_rank": self.text_rank,
            "similarity": None if self.similarity is None else round(self.similarity, 4),
        }


@dataclass(frozen=True, slots=True)
class Hit:
    """A document found, scored by its best chunk."""

    document_id: uuid.UUID
    filename: str | None
    status: DocumentStatus
    score: float
    matches: tuple[Match, ...]


@dataclass(frozen=True, slots=True)
class SearchResults:
    """Documents best first."""

    query: str
    mode: SearchMode
    hits: tuple[Hit, ...]

    def to_json(self) -> dict[str, Any]:
        """The JSON the API and CLI print."""
        return {
            "query": self.query,
            "mode": self.mode.value,
            "results": [
                {
                    "document_id": str(h.document_id),
                    "filename": h.filename,
                    "status": h.status.value,
                    "score": round(h.score, 6),
                    "page": h.matches[0].page_no,
                    "snippet": h.matches[0].snippet,
                    "matches": [m.to_json() for m in h.matches],
                }
                for h in self.hits
            ],
        }


def check_query(query: str, *, limit: int, statuses: Sequence[str], tag: str | None) -> tuple[str, list[str]]:
    """The query stripped and the statuses validated; SearchQueryError names the first bad parameter."""
    if any(ord(ch) < 32 and ch not in "\t\n\r" for ch in query + (tag or "")):
        raise SearchQueryError("q and tag must not contain control characters (such as NUL)")
    text = " ".join(query.split())
    if not text:
        raise SearchQueryError("q: the search text is empty; send e.g. q=invoice from acme")
    if len(text) > MAX_QUERY_CHARS:
        raise SearchQueryError(f"q: {len(text)} characters, more than {MAX_QUERY_CHARS}")
    if not 1 <= limit <= MAX_LIMIT:
        raise SearchQueryError(f"limit: {limit} is outside 1..{MAX_LIMIT}")
    known = {s.value for s in DocumentStatus}
    for status in statuses:
        if status not in known:
            raise SearchQueryError(f"status: {status[:40]!r} is not one of {', '.join(sorted(known))}")
    if tag is not None and not 0 < len(tag) <= MAX_TAG_CHARS:
        raise SearchQueryError(f"tag: must be 1..{MAX_TAG_CHARS} characters")
    return text, list(statuses)


def _filters(first_param: int, statuses: Sequence[str], tag: str | None) -> tuple[str, list[Any]]:
    """SQL conditions on ``c`` (chunks) and ``d`` (documents) with their parameters."""
    sql, params = "", list[Any]()
    n = first_param
    if statuses:
        sql += f" AND d.status = ANY(${n}::text[])"
        params.append(list(statuses))
        n += 1
    if tag is not None:
        # Tags of the metadata and summary products (artifacts.data -> kind -> tags).
        sql += (
            " AND EXISTS (SELECT 1 FROM artifacts a, jsonb_array_elements_text(a.data -> a.kind -> 'tags') t"
            f" WHERE a.document_id = c.document_id AND a.kind IN ('metadata', 'summary') AND lower(t) = lower(${n}))"
        )
        params.append(tag)
    return sql, params


async def _vector_ranks(
    conn: asyncpg.Connection, support: VectorSupport, vector: list[float], *,
    k: int, ef_search: int, min_similarity: float, statuses: Sequence[str], tag: str | None,
) -> dict[tuple[uuid.UUID, int], tuple[int, float]]:  # fmt: skip
    dims = len(vector)
    expression = index_expression(support, dims)
    where, params = _filters(3, statuses, tag)
    join = " JOIN documents d ON d.id = c.document_id" if where else ""
    if dims <= MAX_INDEXED_DIMS:
        await conn.execute(f"SET LOCAL hnsw.ef_search = {max(int(ef_search), k)}")
    rows = await conn.fetch(
        f"SELECT c.document_id, c.chunk_no, c.{expression} {support.cosine_distance} "
        f"$1::real[]::{support.vector(dims)} AS distance FROM chunks c{join} "
        f"WHERE c.dims = {int(dims)}{where} ORDER BY distance LIMIT $2",
        vector, k, *params,
    )  # fmt: skip
    close = [r for r in rows if 1.0 - r["distance"] >= min_similarity]
    return {(r["document_id"], r["chunk_no"]): (n, 1.0 - r["distance"]) for n, r in enumerate(close, 1)}


async def _text_ranks(
    conn: asyncpg.Connection, query: str, *, k: int, statuses: Sequence[str], tag: str | None
) -> dict[tuple[uuid.UUID, int], int]:
    where, params = _filters(3, statuses, tag)
    join = " JOIN documents d ON d.id = c.document_id" if where else ""
    rows = await conn.fetch(
        f"SELECT c.document_id, c.chunk_no FROM chunks c{join}, websearch_to_tsquery('simple', $1) q "
        f"WHERE c.tsv @@ q{where} ORDER BY ts_rank_cd(c.tsv, q) DESC, c.document_id, c.chunk_no LIMIT $2",
        query, k, *params,
    )  # fmt: skip
    return {(r["document_id"], r["chunk_no"]): n for n, r in enumerate(rows, 1)}


def snippet(text: str, query: str, *, width: int = SNIPPET_CHARS) -> str:
    """About ``width`` characters of ``text`` around the first query word it holds, whitespace collapsed."""
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    lowered = flat.lower()
    hits = [i for w in _WORD.findall(query.lower()) if len(w) > 2 and (i := lowered.find(w)) >= 0]
    centre = min(hits) if hits else 0
    start = max(0, min(centre - width // 3, len(flat) - width))
    if start:
        space = flat.find(" ", start)
        start = space + 1 if 0 <= space < start + 20 else start
    piece = flat[start : start + width]
    return ("…" if start else "") + piece + ("…" if start + width < len(flat) else "")


async def search(
    store: JobStore,
    query: str,
    *,
    embed: EmbedQuery | None,
    mode: SearchMode = SearchMode.HYBRID,
    limit: int = 10,
    statuses: Sequence[str] = (),
    tag: str | None = None,
    ef_search: int = 100,
    min_similarity: float = 0.0,
) -> SearchResults:
    """Documents matching ``query``, best first (VectorUnavailableError without pgvector, unless text mode)."""
    text, statuses = check_query(query, limit=limit, statuses=statuses, tag=tag)
    k = min(max(limit * CANDIDATES_PER_RESULT, MIN_CANDIDATES), MAX_CANDIDATES)
    vector_hits: dict[tuple[uuid.UUID, int], tuple[int, float]] = {}
    text_hits: dict[tuple[uuid.UUID, int], int] = {}
    support = await vector_support(store) if mode is not SearchMode.TEXT else None
    vector = await embed(text) if support is not None and embed is not None else None
    if support is not None and vector is None:
        raise SearchQueryError(f"mode={mode.value} needs an embedding model to embed the query")
    async with store.pool.acquire() as conn, conn.transaction(readonly=True):
        if support is not None and vector is not None:
            vector_hits = await _vector_ranks(
                conn, support, vector, k=k, ef_search=ef_search, min_similarity=min_similarity, statuses=statuses, tag=tag
            )
        if mode is not SearchMode.VECTOR:
            text_hits = await _text_ranks(conn, text, k=k, statuses=statuses, tag=tag)
        fused: dict[tuple[uuid.UUID, int], float] = {}
        for key, (rank, _) in vector_hits.items():
            fused[key] = fused.get(key, 0.0) + 1.0 / (RRF_K + rank)
        for key, rank in text_hits.items():
            fused[key] = fused.get(key, 0.0) + 1.0 / (RRF_K + rank)
        by_document: dict[uuid.UUID, list[tuple[float, int]]] = {}
        for (doc_id, chunk_no), score in sorted(fused.items(), key=lambda item: -item[1]):
            by_document.setdefault(doc_id, []).append((score, chunk_no))
        best = sorted(by_document.items(), key=lambda item: -item[1][0][0])[:limit]
        wanted = [(doc_id, chunk_no) for doc_id, chunks in best for _, chunk_no in chunks[:MATCHES_PER_DOCUMENT]]
        rows = await conn.fetch(
            """
            SELECT c.document_id, c.chunk_no, c.page_no, c.char_start, c.char_end, c.text, d.filename, d.status
              FROM chunks c JOIN documents d ON d.id = c.document_id
              JOIN unnest($1::uuid[], $2::int[]) AS w(document_id, chunk_no)
                ON w.document_id = c.document_id AND w.chunk_no = c.chunk_no
            """,
            [w[0] for w in wanted], [w[1] for w in wanted],
        )  # fmt: skip
    found = {(r["document_id"], r["chunk_no"]): r for r in rows}
    hits = []
    for doc_id, chunks in best:
        matches = []
        for score, chunk_no in chunks[:MATCHES_PER_DOCUMENT]:
            row = found.get((doc_id, chunk_no))
            if row is None:
                continue  # deleted between the ranking and this read
            vec = vector_hits.get((doc_id, chunk_no))
            matches.append(Match(
                chunk_no, row["page_no"], row["char_start"], row["char_end"], snippet(row["text"], text), score,
                vec[0] if vec else None, text_hits.get((doc_id, chunk_no)), vec[1] if vec else None,
            ))  # fmt: skip
        if matches:
            first = found[(doc_id, matches[0].chunk_no)]
            hits.append(Hit(doc_id, first["filename"], DocumentStatus(first["status"]), matches[0].score, tuple(matches)))
    return SearchResults(text, mode, tuple(hits))
