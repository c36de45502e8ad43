"""A searchable PDF made across worker processes: each page's layer from the process that read it."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pikepdf
from dramatiq.brokers.redis import RedisBroker
from PIL import Image, ImageDraw

from pipeline import documents
from pipeline.context import Context
from pipeline.jobs import DocumentStatus, PageStatus
from pipeline.pdf_output import layer_key
from pipeline.settings import Settings
from tests import pages
from tests.fixtures_workers import ROOT, chunks_of, wait_for_document, worker_env

PAGES = 40
BROKEN = 17  # the page whose layer cannot be stored
WORDS = ["amber", "basil", "cedar", "delta", "ember", "fable", "grove", "harbor", "ivory", "jasper"]


def _marker(page_no: int) -> str:
    return f"Folio {page_no:02d} {WORDS[page_no % 10]} {WORDS[(page_no // 10) % 10]}"


def _scan(page_no: int) -> Image.Image:
    """A short scanned strip (150 dpi): a numbered line and a sentence."""
    image = Image.new("L", (1240, 260), 255)
    draw = ImageDraw.Draw(image)
    font = pages._font()
    draw.text((pages.MARGIN, 60), _marker(page_no), fill=0, font=font)
    draw.text((pages.MARGIN, 130), "Ledger entries are checked twice.", fill=0, font=font)
    return image


def _page_texts(pdf: Path, count: int) -> list[str]:
    return [
        subprocess.run(
            ["pdftotext", "-raw", "-f", str(n), "-l", str(n), str(pdf), "-"], capture_output=True, text=True, check=True
        ).stdout
        for n in range(1, count + 1)
    ]


def test_forty_pages_by_two_processes_each_layer_once_and_a_failed_layer_reported(
    broker: RedisBroker, pipeline_settings: Settings, tmp_path: Path
) -> None:
    from actors.ocr import ocr_document

    broker.flush_all()
    source = pages.pdf_bytes([_scan(n) for n in range(1, PAGES + 1)])
    env = worker_env(pipeline_settings, PAGEMILL_MAX_RETRIES="1", PAGEMILL_MIN_BACKOFF_MS="50", PAGEMILL_MAX_BACKOFF_MS="100")
    log_path = tmp_path / "workers.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dramatiq", "actors.broker:setup_broker", "actors.ocr", "--queues", pipeline_settings.ocr_queue,
             "--processes", "2", "--threads", "1"],
            cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:

            async def scenario() -> None:
                ctx = await Context.open(pipeline_settings)
                try:
                    doc = await documents.ingest_upload(
                        ctx, chunks_of(source), filename="ledger.pdf", dpi=150, options={"outputs": ["pdf"]}
                    )
                    # Storage refuses page BROKEN's layer (a directory where the file would go).
                    (pipeline_settings.storage_dir / layer_key(doc.id, BROKEN)).mkdir(parents=True)
                    ocr_document.send(document_id=str(doc.id))
                    done = await wait_for_document(ctx, doc.id, alive=lambda: proc.poll() is None)
                    assert done.status is DocumentStatus.PARTIAL_ERROR, done.error
                    failed = [p for p in await ctx.store.list_pages(doc.id) if p.status is not PageStatus.DONE]
                    assert [p.page_no for p in failed] == [BROKEN]
                    target = tmp_path / "ledger.searchable.pdf"
                    target.write_bytes(await ctx.storage.get_bytes(documents.result_key(doc.id, "pdf")))
                    result = json.loads(await ctx.storage.get_bytes(documents.result_key(doc.id, "json")))
                finally:
                    await ctx.aclose()
                report = result["outputs"]["pdf"]
                assert report["pages_with_ocr_layer"] == [n for n in range(1, PAGES + 1) if n != BROKEN]
                (without,) = report["pages_without_ocr_layer"]
                assert without["page_no"] == BROKEN and without["reason"].startswith("the page failed")
                with pikepdf.open(target) as made:
                    assert len(made.pages) == PAGES
                    for page_no, page in enumerate(made.pages, start=1):
                        layers = [n for n in page.resources.get("/XObject", {}) if "PagemillOCR" in n]
                        assert len(layers) == (0 if page_no == BROKEN else 1), page_no
                texts = _page_texts(target, PAGES)
                own = {p["page_no"]: p["text"] for p in result["pages"]}
                for page_no, text in enumerate(texts, start=1):
                    if page_no == BROKEN:
                        assert text.strip() == ""
                        continue
                    # The page's own text, from its own layer, and from no other page's.
                    assert " ".join(text.split()) == " ".join(own[page_no].split()), page_no
                    assert f"{page_no:02d}" in text and "Ledger entries" in text
                    assert sum(" ".join(t.split()) == " ".join(text.split()) for t in texts) == 1, page_no

            asyncio.run(scenario())
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    # One JSON object per line, though two processes write them (each line is one write).
    events = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    # Both processes read pages (and so made their layers): the work was spread.
    assert len({e["pid"] for e in events if e.get("event") == "page.done"}) == 2
