"""``GET /metrics``: Prometheus text from a registry of this app's own.

Uploads are counted in-process. Documents by state, queue depths and the page latency
histogram are read from PostgreSQL and Redis at scrape time, so every web process reports the
same cluster-wide numbers (scrape one of them, or aggregate with ``max``). The histogram covers
the pages still in the database: the retention purge lowers it, which Prometheus treats as a
counter reset.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pipeline.context import Context
from pipeline.jobs import DocumentStatus
from pipeline.settings import Settings
from web import _queries
from web._state import app_state

log = structlog.get_logger(__name__)

# Page latency histogram bounds, seconds (OCR of one page: ~1-5 s on CPU).
PAGE_LATENCY_BUCKETS_S = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
# Longest a scrape waits on PostgreSQL or Redis, seconds.
SCRAPE_TIMEOUT_S = 5.0


@dataclass(slots=True)
class _Snapshot:
    documents: dict[DocumentStatus, int] | None = None
    queues: dict[tuple[str, str], int] | None = None
    latency: _queries.LatencyBuckets | None = None
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
        if snap.latency is not None:
            buckets = [
                (str(b), c) for b, c in zip(PAGE_LATENCY_BUCKETS_S, snap.latency.cumulative, strict=True)
            ]
            buckets.append(("+Inf", snap.latency.count))
            yield HistogramMetricFamily(
                "pagemill_page_duration_seconds",
                "Time to render and OCR one page (pages.duration_ms)",
                buckets=buckets,
                sum_value=snap.latency.sum_ms / 1000.0,
            )


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
                snap.documents, snap.latency = await asyncio.wait_for(
                    asyncio.gather(
                        _queries.documents_by_status(pool), _queries.page_latency(pool, bounds_ms)
                    ),
                    SCRAPE_TIMEOUT_S,
                )
                snap.up["postgresql"] = True
            except Exception as exc:  # noqa: BLE001 - a scrape reports what it can
                log.warning("metrics.source_failed", source="postgresql", error=repr(exc))
                snap.up["postgresql"] = False
            try:
                snap.queues = await asyncio.wait_for(_queue_depths(redis, settings), SCRAPE_TIMEOUT_S)
                snap.up["redis"] = True
            except Exception as exc:  # noqa: BLE001
                log.warning("metrics.source_failed", source="redis", error=repr(exc))
                snap.up["redis"] = False
            self._state.snapshot = snap
            return generate_latest(self.registry)


async def _queue_depths(redis: Redis, settings: Settings) -> dict[tuple[str, str], int]:
    # Dramatiq's Redis broker keeps message ids in the list <ns>:<queue>, delayed ones in the
    # list <ns>:<queue>.DQ and dead letters in the sorted set <ns>:<queue>.XQ (dispatch.lua).
    ns = settings.redis_namespace
    queues = list(dict.fromkeys([settings.ocr_queue, settings.default_queue]))
    pipe = redis.pipeline(transaction=False)
    for queue in queues:
        pipe.llen(f"{ns}:{queue}")
        pipe.llen(f"{ns}:{queue}.DQ")
        pipe.zcard(f"{ns}:{queue}.XQ")
    counts = await pipe.execute()
    out: dict[tuple[str, str], int] = {}
    for i, queue in enumerate(queues):
        ready, delayed, dead = counts[3 * i : 3 * i + 3]
        out.update({(queue, "ready"): ready, (queue, "delayed"): delayed, (queue, "dead"): dead})
    return out


async def metrics(request: Request) -> Response:
    """Prometheus metrics: uploads, documents by state, queue depths, page latency.
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
