"""``GET /metrics``: Prometheus text from a registry of this app's own.

Uploads are counted in-process. Everything else is read from PostgreSQL and Redis at scrape
time, so every web process reports the same cluster-wide numbers (scrape one of them, or
aggregate with ``max``): documents and pages by state, queue depths and the age of the oldest
waiting message, and, over the last hour (``RECENT_S``), the durations of the documents and
pages that finished and the LLM tokens used.

The durations are gauge histograms (OpenMetrics ``gaugehistogram``): the distribution of the
last hour, which goes down as well as up. Take quantiles from the buckets as they are
(``histogram_quantile(0.95, ...)``), never through ``rate()``. They are not counters because
counts read from the job store drop whenever the retention purge deletes rows, and ``rate()``
would take each drop for a restart and show a spike.

Worker-side counters (messages processed, errors, retries, time per actor) come from
Dramatiq's Prometheus middleware on the workers themselves; see ``actors/metrics.py``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import asyncpg
import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pipeline.context import Context
from pipeline.jobs import FINAL_DOCUMENT_STATES, DocumentStatus, PageStatus
from pipeline.settings import Settings
from web import _queries
from web._state import app_state

log = structlog.get_logger(__name__)

# Page latency histogram bounds, seconds (OCR of one page: ~1-5 s on CPU).
PAGE_LATENCY_BUCKETS_S = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
# Document duration histogram bounds, seconds (upload to final state: seconds to hours).
DOCUMENT_DURATION_BUCKETS_S = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0,
                               3600.0, 7200.0, 14400.0)  # fmt: skip
# The window of the duration histograms and the token gauge, seconds.
RECENT_S = 3600
# Longest a scrape waits on PostgreSQL or Redis, seconds.
SCRAPE_TIMEOUT_S = 5.0
# Messages looked at from the head of each queue for the oldest one: requeued messages go to the
# tail, so the head is nearly, not strictly, in age order.
OLDEST_SCAN = 10


@dataclass(slots=True)
class _Snapshot:
    documents: dict[DocumentStatus, int] | None = None
    queues: dict[tuple[str, str], int] | None = None
    oldest_s: dict[str, float] | None = None
    latency: _queries.LatencyBuckets | None = None
    durations: dict[str, _queries.LatencyBuckets] | None = None
    pages: dict[PageStatus, int] | None = None
    tokens: dict[str, int] | None = None
    up: dict[str, bool] = field(default_factory=dict)


class _StateCollector(Collector):
    """Yields the last snapshot read from PostgreSQL and Redis."""

    def __init__(self) -> None:
        self.snapshot = _Snapshot()

    def describe(self) -> list[Metric]:
        return []  # names are fixed; nothing to check against other collectors at registration

    def collect(self) -> Iterator[Metric]:
        snap = self.snapshot
        up = GaugeMetricFamily(
            "pagemill_source_up", "Whether the scrape could read this source", labels=["source"]
        )
        for source, ok in snap.up.items():
            up.add_metric([source], 1.0 if ok else 0.0)
        yield up
        if snap.documents is not None:
            docs = GaugeMetricFamily("pagemill_documents", "Documents in each state", labels=["state"])
            for status, count in snap.documents.items():
                docs.add_metric([status.value], count)
            yield docs
        if snap.queues is not None:
            queues = GaugeMetricFamily(
                "pagemill_queue_messages",
                "Messages per Dramatiq queue: ready, delayed (.DQ) and dead-lettered (.XQ)",
                labels=["queue", "kind"],
            )
            for (queue, kind), count in snap.queues.items():
                queues.add_metric([queue, kind], count)
            yield queues
        if snap.oldest_s is not None:
            oldest = GaugeMetricFamily(
                "pagemill_queue_oldest_message_age_seconds",
                "Age of the oldest message waiting in each Dramatiq queue (since it was sent, or its eta); 0 when empty",
                labels=["queue"],
            )
            for queue, age in snap.oldest_s.items():
                oldest.add_metric([queue], age)
            yield oldest
        if snap.pages is not None:
            pages = GaugeMetricFamily("pagemill_pages", "Pages in each state", labels=["state"])
            for page_status, count in snap.pages.items():
                pages.add_metric([page_status.value], count)
            yield pages
        if snap.latency is not None:
            yield _histogram(
                "pagemill_page_duration_seconds",
                "Time to render and OCR one page, pages finished in the last hour (pages.duration_ms)",
                PAGE_LATENCY_BUCKETS_S, {(): snap.latency}, (),
            )  # fmt: skip
        if snap.durations is not None:
            yield _histogram(
                "pagemill_document_duration_seconds",
                "Time from upload to the final state, documents that reached it in the last hour",
                DOCUMENT_DURATION_BUCKETS_S, {(k,): v for k, v in snap.durations.items()}, ("state",),
            )  # fmt: skip
        if snap.tokens is not None:
            tokens = GaugeMetricFamily(
                "pagemill_llm_tokens_last_hour",
                "LLM tokens (prompt and completion) of the artifacts made in the last hour, per kind",
                labels=["kind"],
            )
            for kind, count in snap.tokens.items():
                tokens.add_metric([kind], count)
            yield tokens


def _histogram(
    name: str,
    documentation: str,
    bounds_s: tuple[float, ...],
    series: dict[tuple[str, ...], _queries.LatencyBuckets],
    labels: tuple[str, ...],
) -> GaugeHistogramMetricFamily:
    family = GaugeHistogramMetricFamily(name, documentation, labels=list(labels))
    for values, counts in series.items():
        buckets = [(str(b), c) for b, c in zip(bounds_s, counts.cumulative, strict=True)]
        buckets.append(("+Inf", counts.count))
        family.add_metric(list(values), buckets, counts.sum_ms / 1000.0)
    return family


class Metrics:
    """This app's registry: in-process counters plus the state read at scrape time."""

    def __init__(self) -> None:
        # A registry per app, not the global one, so several apps (tests) do not clash.
        self.registry = CollectorRegistry()
        self.uploads = Counter(
            "pagemill_uploads",
            "Uploads by outcome: accepted, or the error code",
            ["outcome"],
            registry=self.registry,
        )
        self.upload_bytes = Counter(
            "pagemill_upload_bytes", "Bytes of accepted uploads", registry=self.registry
        )
        self._state = _StateCollector()
        self.registry.register(self._state)
        self._lock = asyncio.Lock()

    async def render(self, ctx: Context, redis: Redis, settings: Settings) -> bytes:
        """Read the current state and render everything as Prometheus text."""
        async with self._lock:
            snap = _Snapshot()
            pool = ctx.store.pool
            bounds_ms = [int(b * 1000) for b in PAGE_LATENCY_BUCKETS_S]
            try:
                snap.documents, snap.latency, snap.durations, snap.pages, snap.tokens = await asyncio.wait_for(
                    asyncio.gather(
                        _queries.documents_by_status(pool),
                        _queries.page_latency(pool, bounds_ms, window_s=RECENT_S),
                        _document_durations(pool, RECENT_S),
                        _pages_by_status(pool),
                        _llm_tokens(pool, RECENT_S),
                    ),
                    SCRAPE_TIMEOUT_S,
                )
                snap.up["postgresql"] = True
            except Exception as exc:  # noqa: BLE001 - a scrape reports what it can
                log.warning("metrics.source_failed", source="postgresql", error=repr(exc))
                snap.up["postgresql"] = False
            try:
                snap.queues, snap.oldest_s = await asyncio.wait_for(_queue_depths(redis, settings), SCRAPE_TIMEOUT_S)
                snap.up["redis"] = True
            except Exception as exc:  # noqa: BLE001
                log.warning("metrics.source_failed", source="redis", error=repr(exc))
                snap.up["redis"] = False
            self._state.snapshot = snap
            return generate_latest(self.registry)


async def _queue_depths(redis: Redis, settings: Settings) -> tuple[dict[tuple[str, str], int], dict[str, float]]:
    # Dramatiq's Redis broker keeps message ids in the list <ns>:<queue> (sent with RPUSH, taken
    # with LPOP), their bodies in the hash <ns>:<queue>.msgs, delayed ones in the list
    # <ns>:<queue>.DQ and dead letters in the sorted set <ns>:<queue>.XQ (dispatch.lua).
    ns = settings.redis_namespace
    queues = list(dict.fromkeys([settings.ocr_queue, settings.default_queue]))
    pipe = redis.pipeline(transaction=False)
    for queue in queues:
        pipe.llen(f"{ns}:{queue}")
        pipe.llen(f"{ns}:{queue}.DQ")
        pipe.zcard(f"{ns}:{queue}.XQ")
        pipe.lrange(f"{ns}:{queue}", 0, OLDEST_SCAN - 1)
    counts = await pipe.execute()
    depths: dict[tuple[str, str], int] = {}
    heads: dict[str, list[bytes]] = {}
    for i, queue in enumerate(queues):
        ready, delayed, dead, heads[queue] = counts[4 * i : 4 * i + 4]
        depths.update({(queue, "ready"): ready, (queue, "delayed"): delayed, (queue, "dead"): dead})
    pipe = redis.pipeline(transaction=False)
    for queue in queues:
        pipe.hmget(f"{ns}:{queue}.msgs", heads[queue] or ["-"])
    bodies = await pipe.execute()
    now_ms = time.time() * 1000
    oldest = {
        queue: max((now_ms - _waiting_since_ms(b) for b in found if b is not None), default=0.0) / 1000.0
        for queue, found in zip(queues, bodies, strict=True)
    }
    return depths, {q: max(0.0, round(age, 3)) for q, age in oldest.items()}


def _waiting_since_ms(body: bytes) -> float:
    # A message waits from when it was sent, or from its eta when it was delayed (a retry).
    try:
        data = json.loads(body)
        return max(float(data["message_timestamp"]), float(data.get("options", {}).get("eta") or 0))
    except (ValueError, KeyError, TypeError):
        return time.time() * 1000  # not a message this code can read: do not count it as old


async def _document_durations(pool: asyncpg.Pool, window_s: float) -> dict[str, _queries.LatencyBuckets]:
    """Upload-to-final-state seconds of documents finished in the window, per final state (all present)."""
    # The bounds are constants of this module, not user input.
    filters = ", ".join(f"count(*) FILTER (WHERE s <= {float(b)})" for b in DOCUMENT_DURATION_BUCKETS_S)
    rows = await pool.fetch(
        f"SELECT status, {filters}, count(*), COALESCE(sum(s), 0) FROM ("
        "  SELECT status, extract(epoch FROM finished_at - created_at) AS s FROM documents"
        "   WHERE finished_at > now() - make_interval(secs => $2) AND status = ANY($1::text[])) d GROUP BY status",
        [s.value for s in FINAL_DOCUMENT_STATES], float(window_s),
    )
    n = len(DOCUMENT_DURATION_BUCKETS_S)
    out = {s.value: _queries.LatencyBuckets((0,) * n, 0, 0) for s in sorted(FINAL_DOCUMENT_STATES)}
    for row in rows:
        values = list(row.values())
        out[row["status"]] = _queries.LatencyBuckets(
            tuple(int(v) for v in values[1 : n + 1]), int(values[n + 1]), int(float(values[n + 2]) * 1000)
        )
    return out


async def _pages_by_status(pool: asyncpg.Pool) -> dict[PageStatus, int]:
    rows = await pool.fetch("SELECT status, count(*) AS n FROM pages GROUP BY status")
    counts = {s: 0 for s in PageStatus}
    counts.update({PageStatus(r["status"]): r["n"] for r in rows})
    return counts


async def _llm_tokens(pool: asyncpg.Pool, window_s: float) -> dict[str, int]:
    rows = await pool.fetch(
        "SELECT kind, sum(tokens) AS n FROM artifacts WHERE created_at > now() - make_interval(secs => $1) "
        "GROUP BY kind ORDER BY kind",
        float(window_s),
    )
    return {r["kind"]: int(r["n"]) for r in rows}


async def metrics(request: Request) -> Response:
    """Prometheus metrics: uploads, documents and pages by state, queues, durations, LLM tokens.
    ---
    summary: Prometheus metrics
    tags: [operations]
    responses:
      "200": {description: "Prometheus text exposition format", content: {text/plain: {}}}
    """
    state = app_state(request)
    body = await state.metrics.render(state.ctx, state.redis, state.settings)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


routes = [Route("/metrics", metrics, methods=["GET"], name="metrics")]
