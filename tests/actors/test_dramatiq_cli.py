"""Workers started the way production starts them: the ``dramatiq`` command in a subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from dramatiq.brokers.redis import RedisBroker

from pipeline import documents
from pipeline.context import Context
from pipeline.jobs import DocumentStatus
from pipeline.settings import Settings
from tests import pages
from tests.fixtures_workers import ROOT, chunks_of, wait_for_document, worker_env


@pytest.mark.parametrize("stop", ["leader", "group"])
def test_dramatiq_cli_worker_processes_a_document_and_stops_on_sigterm(
    broker: RedisBroker, pipeline_settings: Settings, tmp_path: Path, stop: str
) -> None:
    """``stop``: SIGTERM to dramatiq's main process, or to the whole group as honcho/Heroku do."""
    from actors.ocr import ocr_document

    broker.flush_all()
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dramatiq", "actors.broker:setup_broker", "actors.ocr", "actors.llm", "--queues", pipeline_settings.ocr_queue,
             "--processes", "1", "--threads", "2"],
            cwd=ROOT, env=worker_env(pipeline_settings), stdout=log_file, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:

            async def scenario() -> None:
                ctx = await Context.open(pipeline_settings)
                try:
                    pdf = pages.pdf_bytes([pages.text_page(pages.PARAGRAPH_A), pages.text_page(pages.PARAGRAPH_B)])
                    doc = await documents.ingest_upload(ctx, chunks_of(pdf), filename="two.pdf")
                    ocr_document.send(document_id=str(doc.id))
                    done = await wait_for_document(ctx, doc.id, alive=lambda: proc.poll() is None)
                    assert done.status is DocumentStatus.COMPLETED, done.error
                    text = (await ctx.storage.get_bytes(documents.result_key(doc.id, "txt"))).decode()
                    assert pages.cer(text.split("\f")[1], "\n".join(pages.PARAGRAPH_B)) < 0.05
                finally:
                    await ctx.aclose()

            asyncio.run(scenario())
        finally:
            if stop == "leader":  # dramatiq's main process forwards it to its workers
                proc.send_signal(signal.SIGTERM)
            else:  # every process of the group at once: workers get it twice
                os.killpg(proc.pid, signal.SIGTERM)
            rc = proc.wait(timeout=60)
    assert rc == 0
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    page_events = [line for line in lines if line.get("event") == "page.done"]
    assert sorted(e["page_no"] for e in page_events) == [1, 2]
    assert all(e["task"] == "tasks.ocr_page" and e["message_id"] and e["document_id"] for e in page_events)


def test_ocr_worker_modules_leave_the_llm_client_out(pipeline_settings: Settings) -> None:
    # The Procfile's OCR worker imports actors.ocr only; it still starts LLM steps (by actor name).
    probe = "import sys, actors.ocr; print(sorted(m for m in ('openai', 'actors.llm') if m in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", probe], env=worker_env(pipeline_settings), cwd=ROOT,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
    procfile = (ROOT / "Procfile").read_text()
    ocr_line = next(line for line in procfile.splitlines() if line.startswith("ocr:"))
    assert " actors.ocr " in ocr_line and "actors.llm" not in ocr_line
