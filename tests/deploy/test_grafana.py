"""deploy/grafana/pagemill.json: a dashboard Grafana can import, querying only metrics that exist.

Every metric name in its queries must be one that pagemill's /metrics serves (rendered by the
web app's code from a job store holding data) or one that Dramatiq's Prometheus middleware exports (its real hooks, run in
a subprocess so their multiprocess setup stays out of this one).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import promql_parser
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from pipeline.artifacts import save_artifact
from pipeline.context import Context
from pipeline.jobs import PageStatus
from pipeline.settings import Settings
from web.metrics import Metrics

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "pagemill.json"

# Runs each hook of the real middleware once, then prints what its multiprocess files hold.
DRAMATIQ_EXPORT = """
import sys
from dramatiq import Message
from dramatiq.middleware.prometheus import Prometheus

middleware = Prometheus()
middleware.after_process_boot(None)
message = Message(queue_name="q", actor_name="a", args=(), kwargs={}, options={"retries": 1})
middleware.after_enqueue(None, message, None)
middleware.before_delay_message(None, message)
middleware.before_process_message(None, message)
middleware.after_process_message(None, message, exception=ValueError("x"))
middleware.after_nack(None, message)
# Imported only now, as in dramatiq's exposition server: after the hooks set the multiprocess directory.
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

registry = CollectorRegistry()
MultiProcessCollector(registry)
sys.stdout.write(generate_latest(registry).decode())
"""


def sample_names(text: str) -> set[str]:
    return {s.name for family in text_string_to_metric_families(text) for s in family.samples}


def selected_metrics(expr: str) -> list[str]:
    """The metric names an expression selects (parsing it as Prometheus does; a syntax error raises)."""
    names: list[str] = []
    tree = promql_parser.parse(expr)
    promql_parser.walk(tree, pre_visit=lambda n: names.append(n.name) if isinstance(n, promql_parser.VectorSelector) else None)
    return names


def dashboard_queries() -> list[tuple[str, str]]:
    board = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["expr"]) for p in board["panels"] for t in p.get("targets", [])]


def test_dashboard_is_importable_json() -> None:
    board: dict[str, Any] = json.loads(DASHBOARD.read_text())
    assert board["title"] == "pagemill" and board["uid"] and isinstance(board["schemaVersion"], int)
    assert [v["name"] for v in board["templating"]["list"]] == ["datasource"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert set(panel["gridPos"]) == {"x", "y", "w", "h"} and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}"
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert selected_metrics(target["expr"]), target["expr"]
    titles = " ".join(p["title"] for p in board["panels"]).lower()
    for topic in ("queue depth", "oldest", "throughput", "document duration", "page ocr latency", "failures",
                  "llm tokens", "workers"):  # fmt: skip
        assert topic in titles, topic
    exprs = " ".join(expr for _, expr in dashboard_queries())
    for quantile in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({quantile}, sum by (le) (max by (le, state) (pagemill_document_duration" in exprs


def test_every_queried_metric_is_exported(pipeline_settings: Settings, tmp_path: Path) -> None:
    async def pagemill_metrics() -> str:
        """What GET /metrics answers, with one finished document so that every family has samples."""
        ctx = await Context.open(pipeline_settings)
        redis = Redis.from_url(pipeline_settings.redis_url or "")
        try:
            doc_id = uuid.uuid4()
            await ctx.store.create_document(document_id=doc_id, source_key="k", kind="pdf")
            await ctx.store.start_pages(doc_id, kind="pdf", page_count=1, engine="test")
            await ctx.store.finish_page(doc_id, 1, PageStatus.DONE, text="t", duration_ms=900)
            await save_artifact(ctx.store, doc_id, "summary", {"s": 1}, tokens=10)
            await ctx.store.pool.execute("UPDATE documents SET status = 'completed', finished_at = now()")
            return (await Metrics().render(ctx, redis, pipeline_settings)).decode()
        finally:
            await redis.aclose()
            await ctx.aclose()

    pagemill = sample_names(asyncio.run(pagemill_metrics()))
    env = dict(os.environ, dramatiq_prom_db=str(tmp_path / "prom"))
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    result = subprocess.run([sys.executable, "-c", DRAMATIQ_EXPORT], env=env, capture_output=True, text=True,
                            timeout=60, check=True)  # fmt: skip
    dramatiq = sample_names(result.stdout)
    assert {"dramatiq_messages_total", "dramatiq_message_duration_milliseconds_bucket"} <= dramatiq
    assert {"pagemill_queue_messages", "pagemill_llm_tokens_last_hour"} <= pagemill

    queried = {(title, name) for title, expr in dashboard_queries() for name in selected_metrics(expr)}
    unknown = sorted((title, name) for title, name in queried if name not in pagemill | dramatiq)
    assert unknown == [], f"the dashboard queries metrics nobody exports: {unknown}"
    used = {name for _, name in queried}
    assert any(n.startswith("dramatiq_") for n in used) and any(n.startswith("pagemill_") for n in used)
