"""``GET /metrics`` reports the queues, documents, pages and tokens this test produced."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
from dramatiq.brokers.redis import RedisBroker
from prometheus_client.parser import text_string_to_metric_families

from pipeline.artifacts import save_artifact
from pipeline.jobs import JobStore, PageStatus
from pipeline.settings import Settings

# How far back the test dates its "old" message, seconds.
BACKDATE_S = 600


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a Prometheus text page, keyed by name and label set."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(metrics: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    assert key in metrics, f"{name}{labels} not exported; have {sorted(k[0] for k in metrics)}"
    return metrics[key]


def test_queue_depths_and_oldest_message_age(api: httpx.Client, broker: RedisBroker, broker_settings: Settings) -> None:
    from actors.llm import echo

    broker.flush_all()
    default, ocr = broker_settings.default_queue, broker_settings.ocr_queue
    metrics = samples(api.get("/metrics").text)
    assert value(metrics, "pagemill_queue_messages", queue=default, kind="ready") == 0
    assert value(metrics, "pagemill_queue_oldest_message_age_seconds", queue=default) == 0

    # One message dies: a consumer takes it (the only one waiting) and rejects it.
    echo.send("doomed")
    consumer = broker.consume(default, prefetch=1, timeout=1000)
    try:
        doomed = next(consumer)
        assert doomed is not None and doomed.args == ("doomed",)
        consumer.nack(doomed)
    finally:
        consumer.close()
    # No worker runs: five messages wait, the first sent (as it were) ten minutes ago.
    old = echo.message("old")
    broker.enqueue(old.copy(message_timestamp=int((time.time() - BACKDATE_S) * 1000)))
    for n in range(4):
        echo.send(n)
    echo.send_with_options(args=("later",), delay=3_600_000)  # waits in the delay queue

    metrics = samples(api.get("/metrics").text)
    assert value(metrics, "pagemill_queue_messages", queue=default, kind="ready") == 5
    assert value(metrics, "pagemill_queue_messages", queue=default, kind="delayed") == 1
    assert value(metrics, "pagemill_queue_messages", queue=default, kind="dead") == 1
    assert value(metrics, "pagemill_queue_messages", queue=ocr, kind="ready") == 0
    age = value(metrics, "pagemill_queue_oldest_message_age_seconds", queue=default)
    assert BACKDATE_S <= age < BACKDATE_S + 120
    assert value(metrics, "pagemill_queue_oldest_message_age_seconds", queue=ocr) == 0
    broker.flush_all()


def test_last_hour_histograms_and_tokens(api: httpx.Client, pipeline_settings: Settings) -> None:
    async def fill() -> None:
        assert pipeline_settings.database_url is not None
        store = await JobStore.connect(pipeline_settings.database_url.get_secret_value(),
                                       schema=pipeline_settings.db_schema)  # fmt: skip
        try:
            done = [("completed", 4), ("completed", 40), ("completed", 400), ("error", 0.5), ("completed", 7)]
            for i, (status, seconds) in enumerate(done):
                doc_id = uuid.uuid4()
                await store.create_document(document_id=doc_id, source_key="k", kind="pdf")
                await store.start_pages(doc_id, kind="pdf", page_count=2, engine="test")
                await store.finish_page(doc_id, 1, PageStatus.DONE, text="t", duration_ms=1500)
                if status == "error":
                    await store.finish_page(doc_id, 2, PageStatus.FAILED, error="broken")
                else:
                    await store.finish_page(doc_id, 2, PageStatus.DONE, text="t", duration_ms=7000)
                    await save_artifact(store, doc_id, "summary", {"s": 1}, tokens=250)
                # The last one finished two hours ago: outside the window, pages and tokens too.
                ago = 7200 if i == len(done) - 1 else 0
                await store.pool.execute(
                    "UPDATE documents SET status = $2, finished_at = now() - make_interval(secs => $3), "
                    "created_at = now() - make_interval(secs => $3 + $4) WHERE id = $1",
                    doc_id, status, float(ago), float(seconds),
                )  # fmt: skip
                if ago:
                    await store.pool.execute(
                        "UPDATE pages SET finished_at = now() - interval '2 hours' WHERE document_id = $1", doc_id
                    )
                    await store.pool.execute(
                        "UPDATE artifacts SET created_at = now() - interval '2 hours' WHERE document_id = $1", doc_id
                    )
            running = uuid.uuid4()  # unfinished: in no histogram
            await store.create_document(document_id=running, source_key="k", kind="pdf")
            await store.start_pages(running, kind="pdf", page_count=1, engine="test")
        finally:
            await store.aclose()

    asyncio.run(fill())
    text = api.get("/metrics").text
    metrics = samples(text)
    assert "# TYPE pagemill_document_duration_seconds histogram" in text
    hist = "pagemill_document_duration_seconds"
    assert value(metrics, f"{hist}_gcount", state="completed") == 3
    assert abs(value(metrics, f"{hist}_gsum", state="completed") - 444) < 1
    assert value(metrics, f"{hist}_bucket", state="completed", le="5.0") == 1
    assert value(metrics, f"{hist}_bucket", state="completed", le="60.0") == 2
    assert value(metrics, f"{hist}_bucket", state="completed", le="300.0") == 2
    assert value(metrics, f"{hist}_bucket", state="completed", le="600.0") == 3
    assert value(metrics, f"{hist}_bucket", state="completed", le="+Inf") == 3
    assert value(metrics, f"{hist}_bucket", state="error", le="1.0") == 1
    assert value(metrics, f"{hist}_gcount", state="cancelled") == 0
    assert value(metrics, "pagemill_page_duration_seconds_gcount") == 7
    assert value(metrics, "pagemill_page_duration_seconds_bucket", le="2.0") == 4
    assert value(metrics, "pagemill_page_duration_seconds_gsum") == 4 * 1.5 + 3 * 7
    assert value(metrics, "pagemill_pages", state="done") == 9  # all pages in the job store
    assert value(metrics, "pagemill_pages", state="failed") == 1
    assert value(metrics, "pagemill_pages", state="pending") == 1
    assert value(metrics, "pagemill_documents", state="completed") == 4
    assert value(metrics, "pagemill_llm_tokens_last_hour", kind="summary") == 750
