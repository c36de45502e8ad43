"""Born-digital PDFs: pagemill end to end vs OCRmyPDF --skip-text and pdftotext on the same file.

One N-page PDF whose text is in the file (made with reportlab, tests/born_digital.py) goes
through the whole stack as the Procfile runs it: the web app (uvicorn) takes the upload over
HTTP, OCR-queue workers (`dramatiq actors.broker:setup_broker actors.ocr`, one process per core) split it and read the
text layers, and the clock stops when GET /status says `completed`. Workers are warmed with a
one-page document first, so model loading (none is needed here) and imports are not counted.
Side by side, on the same file and cores: `ocrmypdf --skip-text -j <cores>` (it also keeps
pages that have text, writing a PDF/A) and `pdftotext` (poppler: text only, no service).

Needs the machine's Redis and PostgreSQL (scripts/bootstrap --test), reportlab (test extra),
and for the comparison `pip install -e '.[bench]'` plus Debian ghostscript and poppler-utils;
a tool that is missing is reported as such. Prints a table, writes
benchmarks/results/born_digital.json.

    .venv/bin/python benchmarks/born_digital.py --pages 300
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.api_load import cleanup_database, free_port, start_server
from tests import born_digital

RESULTS = ROOT / "benchmarks" / "results"
RUN_TIMEOUT_S = 600


def _env(args: argparse.Namespace, run: str, data_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "REDIS_URL": args.redis_url,
        "DATABASE_URL": args.database_url,
        "PAGEMILL_DB_SCHEMA": f"bench_{run}",
        "PAGEMILL_REDIS_NAMESPACE": f"bench-{run}",
        "PAGEMILL_DATA_DIR": str(data_dir),
        "PAGEMILL_LOG_LEVEL": "WARNING",
        "PAGEMILL_OCR_THREADS": "1",
        "MALLOC_ARENA_MAX": "2",
        "dramatiq_queue_prefetch": "1",
        "dramatiq_worker_timeout": "100",
    })  # fmt: skip
    return env


def _start(cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _upload_and_wait(client: httpx.Client, data: bytes) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    response = client.post("/api/documents", files={"file": ("report.pdf", data, "application/pdf")})
    response.raise_for_status()
    links = response.json()["links"]
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        status = client.get(links["status"]).json()
        if status["status"] in ("completed", "partial_error", "error", "cancelled"):
            elapsed = time.perf_counter() - started
            if status["status"] != "completed":
                raise SystemExit(f"pagemill run ended {status['status']}: {status}")
            return elapsed, client.get(links["result"]).json()
        time.sleep(0.02)
    raise SystemExit(f"pagemill did not finish within {RUN_TIMEOUT_S}s")


def run_pagemill(args: argparse.Namespace, data: bytes, warm: bytes, tmp: Path) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    env = _env(args, run, tmp / "data")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    web = start_server(env, port)  # returns once /healthz answers
    ocr = _start([sys.executable, "-m", "dramatiq", "actors.broker:setup_broker", "actors.ocr", "--queues", "ocr", "--processes",
                  str(args.processes), "--threads", "1"], env)  # fmt: skip
    try:
        with httpx.Client(base_url=base, timeout=60) as client:
            for _ in range(args.processes):
                _upload_and_wait(client, warm)
            elapsed, result = _upload_and_wait(client, data)
    finally:
        _stop(ocr)
        web.terminate()
        web.wait(timeout=60)
        asyncio.run(cleanup_database(args.database_url, f"bench_{run}"))
    return {
        "seconds": round(elapsed, 3),
        "pages_per_s": round(args.pages / elapsed, 1),
        "pages_by_source": result["pages_by_source"],
        "characters": result["characters"],
    }


def run_tool(cmd: list[str], pages: int) -> dict[str, Any]:
    if shutil.which(cmd[0]) is None and not Path(cmd[0]).exists():
        return {"error": f"{cmd[0]} is not installed"}
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        return {"error": f"exit {done.returncode}: {done.stderr.strip()[-300:]}"}
    return {"seconds": round(elapsed, 3), "pages_per_s": round(pages / elapsed, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=300)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1, help="OCR worker processes")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()

    data = born_digital.pdf_bytes(born_digital.report_pages(args.pages))
    warm = born_digital.pdf_bytes(born_digital.report_pages(1))
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        source = tmp / "report.pdf"
        source.write_bytes(data)
        pagemill = run_pagemill(args, data, warm, tmp)
        ocrmypdf_bin = Path(sys.executable).with_name("ocrmypdf")
        ocrmypdf_cmd = [str(ocrmypdf_bin), "--skip-text", "-j", str(args.processes), "-q"]
        ocrmypdf = run_tool([*ocrmypdf_cmd, str(source), str(tmp / "o.pdf")], args.pages)
        # Its fastest: no PDF/A conversion (Ghostscript), no optimisation.
        ocrmypdf_fast = run_tool(
            [*ocrmypdf_cmd, "--output-type", "pdf", "--optimize", "0", str(source), str(tmp / "f.pdf")], args.pages
        )
        pdftotext = run_tool(["pdftotext", str(source), str(tmp / "o.txt")], args.pages)
    report = {
        "pages": args.pages,
        "cores": os.cpu_count(),
        "processes": args.processes,
        "date": time.strftime("%Y-%m-%d"),
        "pagemill": pagemill,
        "ocrmypdf_skip_text": ocrmypdf,
        "ocrmypdf_skip_text_output_pdf": ocrmypdf_fast,
        "pdftotext": pdftotext,
    }
    print(f"\n{args.pages}-page born-digital PDF, {os.cpu_count()} cores")
    print(f"{'tool':<44}{'seconds':>9}{'pages/s':>9}")
    rows = [
        ("pagemill (upload -> completed, real workers)", pagemill),
        (f"ocrmypdf --skip-text -j {args.processes}", ocrmypdf),
        ("  same, --output-type pdf --optimize 0", ocrmypdf_fast),
        ("pdftotext (text only, no service)", pdftotext),
    ]
    for label, row in rows:
        if "error" in row:
            print(f"{label:<44}  {row['error']}")
        else:
            print(f"{label:<44}{row['seconds']:>9.2f}{row['pages_per_s']:>9.1f}")
    print(f"pagemill pages by source: {pagemill['pages_by_source']}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "born_digital.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
