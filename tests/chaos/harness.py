"""Tools the chaos tests use: real ``dramatiq`` CLI workers, documents whose page texts are known,
and an audit of every result written to the job store (servers and proxies are in servers.py).

Workers run the way production runs them (the Procfile's ``dramatiq`` command in a process
group of its own), with the broker's heartbeat timeout cut to seconds so that the messages of a
killed worker come back quickly; everything else keeps its production value.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from pipeline import documents
from pipeline.context import Context
from pipeline.jobs import DocumentStatus, PageStatus
from pipeline.settings import Settings
from tests import pages
from tests.fixtures_workers import ROOT, chunks_of
from tests.fixtures_workers import worker_env as base_worker_env

# A worker silent this long is dead for the broker (production: 60 s), ms.
HEARTBEAT_TIMEOUT_MS = 3000
# Broker commands per million that look for dead workers' messages (production: 1000).
MAINTENANCE_CHANCE = 200_000
# Render resolution of the chaos documents: tesseract reads them in well under a second a page.
CHAOS_DPI = 100
# How long a stopping worker may take, seconds (it finishes its running page first).
STOP_TIMEOUT_S = 90
# A page's text beyond this character error rate is not that page's text.
MAX_PAGE_CER = 0.1


def worker_env(settings: Settings, **extra: str) -> dict[str, str]:
    """A Procfile worker's environment for the test's slice, with chaos timing and fast pages."""
    return base_worker_env(
        settings,
        **{
            "PAGEMILL_OCR_ENGINE": "tesseract",
            "PADDLEOCR_PDF_DPI": str(CHAOS_DPI),
            "PAGEMILL_REDIS_HEARTBEAT_TIMEOUT_MS": str(HEARTBEAT_TIMEOUT_MS),
            "PAGEMILL_REDIS_MAINTENANCE_CHANCE": str(MAINTENANCE_CHANCE),
            "dramatiq_worker_timeout": "100",
            **extra,
        },
    )


class CliWorker:
    """One ``dramatiq actors.broker:setup_broker actors.ocr actors.llm`` command (main process + worker processes)."""

    def __init__(
        self,
        env: dict[str, str],
        log_path: Path,
        *,
        queue: str = "ocr",
        processes: int = 1,
        threads: int = 2,
        args: Iterable[str] = (),
    ) -> None:
        self.env, self.log_path = env, log_path
        self.argv = [
            sys.executable,
            "-m",
            "dramatiq",
            "actors.broker:setup_broker",
            "actors.ocr",
            "actors.llm",
            "--queues",
            queue,
            "--processes",
            str(processes),
            "--threads",
            str(threads),
            *args,
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> CliWorker:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def worker_pids(self) -> list[int]:
        """The worker processes the main process forked (they run the actors)."""
        with contextlib.suppress(psutil.NoSuchProcess):
            return [child.pid for child in psutil.Process(self.pid).children() if "python" in child.name()]
        return []

    def wait_for_workers(self, count: int = 1, timeout: float = 60) -> list[int]:
        deadline = time.monotonic() + timeout
        while len(pids := self.worker_pids()) < count:
            assert self.alive(), f"the worker exited at start-up:\n{self.log_tail()}"
            assert time.monotonic() < deadline, f"no worker process after {timeout}s:\n{self.log_tail()}"
            time.sleep(0.05)
        return pids

    def kill_worker_process(self) -> int:
        """SIGKILL one worker process; dramatiq's main process then stops the rest and exits."""
        pid = self.wait_for_workers()[0]
        os.kill(pid, signal.SIGKILL)
        self.wait(STOP_TIMEOUT_S)
        return pid

    def kill_all(self) -> None:
        """SIGKILL the whole process group at once, as an OOM kill of the container would."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.wait(STOP_TIMEOUT_S)

    def terminate(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM to the main process (a deploy or scale-down); the exit status."""
        assert self.proc is not None
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the worker did not exit within {timeout}s:\n{self.log_tail()}") from None

    def stop(self) -> None:
        """Make sure nothing of this worker is left (test teardown)."""
        if self.proc is None:
            return
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """The JSON log events of every run of this worker's log file."""
        found = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    event = json.loads(line)
                    if name is None or event.get("event") == name:
                        found.append(event)
        return found

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


async def eventually(
    check: Callable[[], Awaitable[Any]], *, timeout: float, what: str, alive: Callable[[], bool] | None = None
) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if alive is not None and not alive():
            raise AssertionError(f"the worker exited while waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


# --- documents and what must hold for them --------------------------------------------------------


def page_lines(doc_no: int, page_no: int) -> list[str]:
    """The text of page ``page_no`` of chaos document ``doc_no``: different on every page."""
    return [f"Chaos document {doc_no} page {page_no}."] + pages.PARAGRAPH_A[page_no % 3 : page_no % 3 + 2]


def chaos_pdf(doc_no: int, page_count: int) -> bytes:
    return pages.pdf_bytes([pages.text_page(page_lines(doc_no, n)) for n in range(1, page_count + 1)])


@dataclass
class Batch:
    """Documents a test uploaded, with the page texts they must end up with."""

    expected: dict[uuid.UUID, list[str]] = field(default_factory=dict)

    @property
    def ids(self) -> list[uuid.UUID]:
        return list(self.expected)

    @property
    def page_total(self) -> int:
        return sum(len(texts) for texts in self.expected.values())


async def upload_batch(ctx: Context, documents_: int, page_count: int, *, dpi: int | None = None) -> Batch:
    """Ingest ``documents_`` PDFs of ``page_count`` pages each (not sent yet); ``dpi`` renders slower pages."""
    batch = Batch()
    for d in range(1, documents_ + 1):
        doc = await documents.ingest_upload(
            ctx, chunks_of(chaos_pdf(d, page_count)), filename=f"chaos-{d}.pdf", dpi=dpi
        )
        batch.expected[doc.id] = ["\n".join(page_lines(d, n)) for n in range(1, page_count + 1)]
    return batch


AUDIT_SQL = """
CREATE TABLE chaos_audit (
    kind text NOT NULL, document_id uuid NOT NULL, page_no int, status text NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE FUNCTION chaos_audit_page() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO chaos_audit (kind, document_id, page_no, status) VALUES ('page', NEW.document_id, NEW.page_no, NEW.status);
    RETURN NEW;
END $$;
CREATE FUNCTION chaos_audit_document() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO chaos_audit (kind, document_id, status) VALUES ('document', NEW.id, NEW.status);
    RETURN NEW;
END $$;
-- Every write of a page result (any UPDATE leaving a page final) and every final document state.
CREATE TRIGGER chaos_page_result AFTER UPDATE ON pages FOR EACH ROW
    WHEN (NEW.status IN ('done', 'failed', 'skipped')) EXECUTE FUNCTION chaos_audit_page();
CREATE TRIGGER chaos_document_final AFTER UPDATE ON documents FOR EACH ROW
    WHEN (NEW.status IS DISTINCT FROM OLD.status AND NEW.status IN ('completed', 'partial_error', 'error', 'cancelled'))
    EXECUTE FUNCTION chaos_audit_document();
"""


async def install_audit(ctx: Context) -> None:
    """Record every page-result write and final document state in the test's schema."""
    async with ctx.store.pool.acquire() as conn:
        await conn.execute(AUDIT_SQL)


async def audit_counts(ctx: Context, kind: str) -> dict[tuple[uuid.UUID, int | None], list[str]]:
    rows = await ctx.store.pool.fetch(
        "SELECT document_id, page_no, status FROM chaos_audit WHERE kind = $1 ORDER BY at", kind
    )
    found: dict[tuple[uuid.UUID, int | None], list[str]] = {}
    for row in rows:
        found.setdefault((row["document_id"], row["page_no"]), []).append(row["status"])
    return found


async def assert_each_page_once(ctx: Context, batch: Batch) -> int:
    """Every document completed with every page's own text, each result written exactly once.

    Returns how many pages were checked.
    """
    page_writes = await audit_counts(ctx, "page")
    finals = await audit_counts(ctx, "document")
    checked = 0
    for doc_id, texts in batch.expected.items():
        doc = await ctx.store.get_document(doc_id)
        assert doc.status is DocumentStatus.COMPLETED, (doc.status, doc.error)
        assert doc.page_count == len(texts) and doc.pages_finished == doc.page_count, doc
        assert finals.get((doc_id, None)) == ["completed"], finals.get((doc_id, None))
        rows = await ctx.store.list_pages(doc_id)
        assert [p.page_no for p in rows] == list(range(1, len(texts) + 1))
        for page in rows:
            assert page.status is PageStatus.DONE and page.text is not None, page
            assert page_writes.get((doc_id, page.page_no)) == ["done"], (
                f"page {page.page_no} of {doc_id} was written {page_writes.get((doc_id, page.page_no))}"
            )
        text = (await ctx.storage.get_bytes(documents.result_key(doc_id, "txt"))).decode()
        got = text.split("\f")
        assert len(got) == len(texts)
        for n, (hyp, ref) in enumerate(zip(got, texts, strict=True), 1):
            assert pages.cer(hyp, ref) <= MAX_PAGE_CER, f"page {n} of {doc_id}: {hyp!r}"
            checked += 1
    return checked
