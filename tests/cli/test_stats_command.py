"""`pagemill stats` shows the stored daily summaries, as text and as JSON."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from pipeline.jobs import JobStore, PageStatus
from pipeline.stats import record_day

ROOT = Path(__file__).resolve().parents[2]
DAY = date(2026, 5, 4)


def _stats(database_url: str, db_schema: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.update(DATABASE_URL=database_url, PAGEMILL_DB_SCHEMA=db_schema, PAGEMILL_DATA_DIR=str(tmp_path / "data"),
               PYTHONPATH=str(ROOT))  # fmt: skip
    env.pop("REDIS_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "pagemill.cli", "stats", *args],
        check=False, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_stats_prints_each_stored_day(database_url: str, db_schema: str, tmp_path: Path) -> None:
    empty = _stats(database_url, db_schema, tmp_path)
    assert empty.returncode == 0 and "no daily summaries yet" in empty.stderr

    async def fill() -> None:
        store = await JobStore.connect(database_url, schema=db_schema)
        try:
            doc_id = uuid.uuid4()
            await store.create_document(document_id=doc_id, source_key="k", kind="pdf")
            await store.start_pages(doc_id, kind="pdf", page_count=2, engine="test")
            await store.finish_page(doc_id, 1, PageStatus.DONE, text="a", duration_ms=1500)
            await store.finish_page(doc_id, 2, PageStatus.FAILED, error="page 2 is blank")
            noon = datetime(2026, 5, 4, 12, tzinfo=UTC)
            await store.pool.execute("UPDATE pages SET finished_at = $1", noon)
            await store.pool.execute(
                "UPDATE documents SET status = 'partial_error', created_at = $1, finished_at = $1::timestamptz + interval '90 s', "
                "error = '1 of 2 pages failed'", noon,
            )  # fmt: skip
            await record_day(store, DAY - timedelta(days=1))
            await record_day(store, DAY)
        finally:
            await store.aclose()

    asyncio.run(fill())
    text = _stats(database_url, db_schema, tmp_path, "--days", "7")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0] == "2026-05-04  documents finished: partial_error=1  created: 1"
    assert lines[1].startswith("  pages: 2 (1 failed)  0.0000/s average, 0.03/s busiest minute  document time p50=90s")
    assert "      1 x 1 of 2 pages failed" in lines and "      1 x page 2 is blank" in lines
    assert "2026-05-03  documents finished: none  created: 0" in lines

    as_json = _stats(database_url, db_schema, tmp_path, "--days", "1", "--json")
    rows = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert len(rows) == 1 and rows[0]["day"] == "2026-05-04"
    assert rows[0]["pages_done"] == 1 and rows[0]["pages_failed"] == 1
    assert rows[0]["failure_reasons"][0] == {"reason": "1 of 2 pages failed", "count": 1}
