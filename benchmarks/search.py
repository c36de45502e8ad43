"""Search: HNSW index build time, query latency and recall@10 against exact search (pgvector).

100,000 chunks of 768 dimensions (1,000 documents x 100 chunks) are stored through the
embeddings step's own code (``replace_chunks``) into a PostgreSQL with pgvector (the embedded
pgserver unless --database-url names one), then the HNSW index is built with the step's own
DDL (``ensure_index``: m, ef_construction from pipeline.search.vectors). Vectors have the shape
real embeddings have, a low intrinsic dimension: topic centres in a 64-dimensional space, mapped
into 768 dimensions, plus a little full-rank noise, unit length. Each chunk also carries 40
words of a 5,000-word vocabulary for the full-text half.

For each hnsw.ef_search, the top-10 chunk query (new points, not in the table) is timed and
compared with exact search (the same query with index scans disabled) for recall@10; then the
whole ``pipeline.search.search`` the API runs (candidates, fusion, chunk texts; the embedding
call excluded) is timed in vector and hybrid (vector + full-text) mode at the default ef_search. Prints a table
and writes benchmarks/results/search.json.

    .venv/bin/python benchmarks/search.py                 # 100,000 chunks, ~5-10 min on 2 cores
    .venv/bin/python benchmarks/search.py --chunks 20000  # quicker look
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline import jobs
from pipeline.search import SearchMode, search
from pipeline.search.chunking import TextChunk
from pipeline.search.index import replace_chunks
from pipeline.search.vectors import HNSW_EF_CONSTRUCTION, HNSW_M, ensure_index, vector_support

RESULTS = ROOT / "benchmarks" / "results"
CHUNKS_PER_DOCUMENT = 100
LATENT_DIMS = 64
TOPICS = 500
VOCABULARY = 5000
WORDS_PER_CHUNK = 40
K = 10
EF_SEARCH = (40, 64, 100, 200)
DEFAULT_EF = 100
WARMUP_QUERIES = 50


def make_vectors(rng: np.random.Generator, count: int, dims: int, basis: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Unit vectors near topic centres in a low-dimensional subspace, with a little full-rank noise."""
    topic = rng.integers(len(centres), size=count)
    latent = centres[topic] + 0.6 * rng.standard_normal((count, LATENT_DIMS))
    vectors = latent @ basis + 0.05 * rng.standard_normal((count, dims))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def exact_top(conn: asyncpg.Connection, support: Any, vector: list[float], dims: int) -> list[tuple[Any, int]]:
    async with conn.transaction():
        await conn.execute("SET LOCAL enable_indexscan = off")
        rows = await conn.fetch(
            f"SELECT document_id, chunk_no FROM chunks WHERE dims = {dims} ORDER BY "
            f"embedding::{support.vector(dims)} {support.cosine_distance} $1::real[]::{support.vector(dims)} LIMIT {K}",
            vector,
        )
    return [(r["document_id"], r["chunk_no"]) for r in rows]


async def ann_top(conn: asyncpg.Connection, support: Any, vector: list[float], dims: int, ef: int) -> list[tuple[Any, int]]:
    async with conn.transaction():
        await conn.execute(f"SET LOCAL hnsw.ef_search = {ef}")
        rows = await conn.fetch(
            f"SELECT document_id, chunk_no FROM chunks WHERE dims = {dims} ORDER BY "
            f"embedding::{support.vector(dims)} {support.cosine_distance} $1::real[]::{support.vector(dims)} LIMIT {K}",
            vector,
        )
    return [(r["document_id"], r["chunk_no"]) for r in rows]


async def run(dsn: str, args: argparse.Namespace) -> dict[str, Any]:
    schema = f"bench_search_{uuid.uuid4().hex[:8]}"
    # maintenance_work_mem: the HNSW graph must fit, or the build slows down by an order of magnitude.
    pool = await asyncpg.create_pool(
        dsn, min_size=1, max_size=2, init=jobs._init_connection, command_timeout=3600,
        server_settings={"search_path": schema, "maintenance_work_mem": args.maintenance_work_mem,
                         "max_parallel_maintenance_workers": str(max(1, (os.cpu_count() or 2) - 1))},
    )  # fmt: skip
    store = jobs.JobStore(pool, schema)
    await store.migrate()
    try:
        support = await vector_support(store)
        rng = np.random.default_rng(args.seed)
        basis = rng.standard_normal((LATENT_DIMS, args.dims)) / np.sqrt(LATENT_DIMS)
        centres = 2.0 * rng.standard_normal((TOPICS, LATENT_DIMS))
        words = np.array([f"w{n:04d}" for n in range(VOCABULARY)])
        documents = args.chunks // CHUNKS_PER_DOCUMENT

        started = time.perf_counter()
        for d in range(documents):
            doc_id = uuid.uuid4()
            await store.create_document(document_id=doc_id, source_key=f"documents/{doc_id}/source.pdf",
                                        filename=f"doc{d:05d}.pdf", status=jobs.DocumentStatus.COMPLETED)  # fmt: skip
            vectors = make_vectors(rng, CHUNKS_PER_DOCUMENT, args.dims, basis, centres)
            texts = [" ".join(rng.choice(words, WORDS_PER_CHUNK)) for _ in range(CHUNKS_PER_DOCUMENT)]
            chunks = [TextChunk(n, 1 + n // 10, 0, len(t), t) for n, t in enumerate(texts)]
            await replace_chunks(store, doc_id, chunks, vectors=vectors.tolist(), support=support)
            if (d + 1) % 100 == 0:
                print(f"  stored {(d + 1) * CHUNKS_PER_DOCUMENT} chunks", file=sys.stderr, flush=True)
        insert_s = time.perf_counter() - started
        await pool.execute("VACUUM ANALYZE chunks")

        started = time.perf_counter()
        await ensure_index(store, support, args.dims)
        build_s = time.perf_counter() - started
        size = await pool.fetchval(f"SELECT pg_relation_size('chunks_embedding_{args.dims}')")

        queries = make_vectors(rng, args.queries, args.dims, basis, centres).tolist()
        async with pool.acquire() as conn:
            exact = [await exact_top(conn, support, q, args.dims) for q in queries]
            for q in queries[:WARMUP_QUERIES]:  # the index's pages into shared buffers before timing
                await ann_top(conn, support, q, args.dims, EF_SEARCH[0])
            sweep = []
            for ef in EF_SEARCH:
                recalls, times = [], []
                for q, truth in zip(queries, exact, strict=True):
                    t0 = time.perf_counter()
                    got = await ann_top(conn, support, q, args.dims, ef)
                    times.append((time.perf_counter() - t0) * 1000)
                    recalls.append(len(set(got) & set(truth)) / K)
                sweep.append({"ef_search": ef, "recall_at_10": statistics.fmean(recalls),
                              "p50_ms": percentile(times, 50), "p95_ms": percentile(times, 95)})  # fmt: skip
            plan = await conn.fetchval(
                f"EXPLAIN (FORMAT JSON) SELECT chunk_no FROM chunks WHERE dims = {args.dims} ORDER BY "
                f"embedding::{support.vector(args.dims)} {support.cosine_distance} $1::real[]::{support.vector(args.dims)} "
                f"LIMIT {K}", queries[0],
            )  # fmt: skip
        # The whole search() the API runs (candidates, fusion, chunk texts), embedding call excluded.
        end_to_end: dict[str, list[float]] = {"vector": [], "hybrid": []}
        for q in queries:

            async def embed_q(_: str, vector: list[float] = q) -> list[float]:
                return vector

            text = " ".join(rng.choice(words, 2))
            for mode in (SearchMode.VECTOR, SearchMode.HYBRID):
                t0 = time.perf_counter()
                await search(store, text, embed=embed_q, mode=mode, limit=K, ef_search=DEFAULT_EF)
                end_to_end[mode.value].append((time.perf_counter() - t0) * 1000)
        return {
            "chunks": documents * CHUNKS_PER_DOCUMENT,
            "dims": args.dims,
            "queries": args.queries,
            "hnsw": {"m": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION},
            "pgvector": support.version,
            "postgres": await pool.fetchval("SHOW server_version"),
            "maintenance_work_mem": args.maintenance_work_mem,
            "insert_s": round(insert_s, 1),
            "index_build_s": round(build_s, 1),
            "index_mb": round(size / 2**20, 1),
            "vector_search": sweep,
            "index_used": f"chunks_embedding_{args.dims}" in str(plan),
            "search_function": {
                mode: {"ef_search": DEFAULT_EF, "p50_ms": percentile(t, 50), "p95_ms": percentile(t, 95)}
                for mode, t in end_to_end.items()
            },
        }
    finally:
        await pool.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await pool.close()


def main() -> None:
    """Run the benchmark, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--dims", type=int, default=768)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--maintenance-work-mem", default="1GB")
    parser.add_argument("--database-url", default=None, help="a PostgreSQL with pgvector [default: embedded pgserver]")
    args = parser.parse_args()

    server = pgdata = None
    dsn = args.database_url
    if dsn is None:
        import pgserver

        pgdata = Path(tempfile.mkdtemp(prefix="pm-bench-"))
        server = pgserver.get_server(pgdata, cleanup_mode="stop")
        dsn = server.get_uri()
    try:
        report = asyncio.run(run(dsn, args))
    finally:
        if server is not None:
            server.cleanup()
        if pgdata is not None:
            shutil.rmtree(pgdata, ignore_errors=True)
    report.update(cores=os.cpu_count(), date=time.strftime("%Y-%m-%d"))
    print(f"\n{report['chunks']} chunks x {report['dims']} dims, PostgreSQL {report['postgres']}, "
          f"pgvector {report['pgvector']}, {report['cores']} cores")  # fmt: skip
    print(f"insert {report['insert_s']} s; HNSW build (m={HNSW_M}, ef_construction={HNSW_EF_CONSTRUCTION}) "
          f"{report['index_build_s']} s, {report['index_mb']} MB")  # fmt: skip
    print(f"HNSW index used by the query plan: {report['index_used']}")
    print(f"{'query':<26}{'ef_search':>10}{'recall@10':>11}{'p50 ms':>9}{'p95 ms':>9}")
    for row in report["vector_search"]:
        print(f"{'top-10 chunks (SQL)':<26}{row['ef_search']:>10}{row['recall_at_10']:>11.3f}"
              f"{row['p50_ms']:>9.1f}{row['p95_ms']:>9.1f}")  # fmt: skip
    for mode, row in report["search_function"].items():
        print(f"{'search() ' + mode:<26}{row['ef_search']:>10}{'':>11}{row['p50_ms']:>9.1f}{row['p95_ms']:>9.1f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "search.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
