"""``GET /metrics``: Prometheus text from a registry of this app's own.

Uploads are counted in-process. Everything else is read at scrape time, from PostgreSQL through
the job store's read model (``JobStore.reads``) and from Redis (``web.queues``), so every web
process reports the same cluster-wide numbers (scrape one of them, or aggregate with ``max``):
documents and pages by state, queue depths and the age of the oldest waiting message, and, over
the last hour (``RECENT_S``), the durations of the documents and pages that finished and the LLM
tokens used.

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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pipeline.artifacts import recent_tokens_by_kind
from pipeline.context import Context
from pipeline.jobs import DocumentStatus, LatencyBuckets, PageStatus
from pipeline.settings import Settings
from web._state import app_state
from web.queues import queue_depths

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


@dataclass(slots=True)
class _Snapshot:
    documents: dict[DocumentStatus, int] | None = None
    queues: dict[tuple[str, str], int] | None = None
    oldest_s: dict[str, float] | None = None
    latency: LatencyBuckets | None = None
    durations: dict[DocumentStatus, LatencyBuckets] | None = None
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
        yield _gauge(
            "pagemill_source_up", "Whether the scrape could read this source", labels=["source"],
            values={(source,): 1.0 if ok else 0.0 for source, ok in snap.up.items()},
        )  # fmt: skip
        if snap.documents is not None:
            yield _gauge(
                "pagemill_documents", "Documents in each state", labels=["state"],
                values={(status.value,): count for status, count in snap.documents.items()},
            )  # fmt: skip
        if snap.queues is not None:
            yield _gauge(
                "pagemill_queue_messages",
                "Messages per Dramatiq queue: ready, delayed (.DQ) and dead-lettered (.XQ)",
                labels=["queue", "kind"], values=snap.queues,
            )  # fmt: skip
        if snap.oldest_s is not None:
            yield _gauge(
                "pagemill_queue_oldest_message_age_seconds",
                "Age of the oldest message waiting in each Dramatiq queue (since it was sent, or its eta); 0 when empty",
                labels=["queue"], values={(queue,): age for queue, age in snap.oldest_s.items()},
            )  # fmt: skip
        if snap.pages is not None:
            yield _gauge(
                "pagemill_pages", "Pages in each state", labels=["state"],
                values={(status.value,): count for status, count in snap.pages.items()},
            )  # fmt: skip
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
                DOCUMENT_DURATION_BUCKETS_S, {(k.value,): v for k, v in snap.durations.items()}, ("state",),
            )  # fmt: skip
        if snap.tokens is not None:
            yield _gauge(
                "pagemill_llm_tokens_last_hour",
                "LLM tokens (prompt and completion) of the artifacts made in the last hour, per kind",
                labels=["kind"], values={(kind,): count for kind, count in snap.tokens.items()},
            )  # fmt: skip


def _gauge(name: str, documentation: str, *, labels: list[str], values: Mapping[Any, float]) -> Metric:
    """One gauge family with a sample per label tuple."""
    family = GaugeMetricFamily(name, documentation, labels=labels)
    for key, value in values.items():
        family.add_metric(list(key), value)
    return family


def _histogram(
    name: str,
    documentation: str,
    bounds_s: tuple[float, ...],
    series: dict[tuple[str, ...], LatencyBuckets],
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
            reads = ctx.store.reads
            bounds_ms = [int(b * 1000) for b in PAGE_LATENCY_BUCKETS_S]
            try:
                snap.documents, snap.latency, snap.durations, snap.pages, snap.tokens = await asyncio.wait_for(
                    asyncio.gather(
                        reads.documents_by_status(),
                        reads.page_latency(bounds_ms, window_s=RECENT_S),
                        reads.document_durations(DOCUMENT_DURATION_BUCKETS_S, window_s=RECENT_S),
                        reads.pages_by_status(),
                        recent_tokens_by_kind(ctx.store, window_s=RECENT_S),
                    ),
                    SCRAPE_TIMEOUT_S,
                )
                snap.up["postgresql"] = True
            except Exception as exc:  # noqa: BLE001 - a scrape reports what it can
                log.warning("metrics.source_failed", source="postgresql", error=repr(exc))
                snap.up["postgresql"] = False
            try:
                snap.queues, snap.oldest_s = await asyncio.wait_for(queue_depths(redis, settings), SCRAPE_TIMEOUT_S)
                snap.up["redis"] = True
            except Exception as exc:  # noqa: BLE001
                log.warning("metrics.source_failed", source="redis", error=repr(exc))
                snap.up["redis"] = False
            self._state.snapshot = snap
            return generate_latest(self.registry)


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
