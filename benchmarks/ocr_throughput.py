"""OCR throughput: a careful plain loop of the engine vs pagemill end to end, same pages, same cores.

(a) baseline: one process per core, each loads the engine once and OCRs its share of the pages
    (render + orientation + recognition + reading order, exactly what a page task does).
(b) pagemill: `dramatiq` workers (processes x threads on the same cores) on the machine's Redis
    and PostgreSQL; one N-page PDF is uploaded to storage, `tasks.ocr_document` is sent, and the
    clock stops when the document is `completed`.

Both exclude model loading (workers are warmed with a one-page document first). Prints a table
and writes benchmarks/results/ocr_throughput.json, including peak RSS (VmHWM) per worker process.
``--profiles`` runs both once per onnx profile (``PAGEMILL_OCR_PROFILE``), on the same pages.

    .venv/bin/python benchmarks/ocr_throughput.py --pages 16 [--profiles cascade,fast,accurate,v5]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.api_load import cleanup_database
from pipeline import pdf
from pipeline.settings import ExplicitSettings, Settings

SCANS = ROOT / "tests" / "resources" / "ocr"
RESULTS = ROOT / "benchmarks" / "results"
DPI = 180


def scan_pages() -> list[Image.Image]:
    """Every page of the real scans, rendered at DPI."""
    images: list[Image.Image] = []
    for path in sorted(SCANS.iterdir()):
        if path.suffix.lower() not in (".pdf", ".tif", ".png"):
            continue
        info = pdf.inspect_document(path, max_pages=100, max_page_pixels=200_000_000, dpi=DPI)
        for n in range(1, info.page_count + 1):
            array = pdf.render_page(path, n, dpi=DPI, max_page_pixels=200_000_000)
            images.append(Image.fromarray(array))
    return images


def make_pdf(images: list[Image.Image]) -> bytes:
    """The pages as one image PDF at DPI (so pdfium renders them back at the same size)."""
    out = io.BytesIO()
    rgb = [im.convert("RGB") for im in images]
    rgb[0].save(out, format="PDF", save_all=True, append_images=rgb[1:], resolution=DPI)
    return out.getvalue()


# --- (a) plain loop ---------------------------------------------------------------------------
_engine = None


def _load(settings: Settings) -> None:
    global _engine
    from pipeline.ocr import get_engine

    _engine = get_engine(settings, settings.languages)


def _ocr(task: tuple[str, int, float]) -> tuple[int, int]:
    from pipeline.ocr import recognize_page

    path, page_no, min_conf = task
    image = pdf.render_page(Path(path), page_no, dpi=DPI, max_page_pixels=200_000_000)
    result = recognize_page(_engine, image, min_confidence=min_conf)  # type: ignore[arg-type]
    return os.getpid(), len(result.text)


def _peak_rss_mb(_: int) -> tuple[int, float]:
    import resource

    return os.getpid(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_baseline(pdf_path: Path, pages: int, processes: int, settings: Settings) -> dict[str, float]:
    with ProcessPoolExecutor(processes, initializer=_load, initargs=(settings,)) as pool:
        list(pool.map(_ocr, [(str(pdf_path), 1, settings.min_confidence)] * processes))  # warm every process
        start = time.perf_counter()
        chars = sum(n for _, n in pool.map(_ocr, [(str(pdf_path), n, settings.min_confidence) for n in range(1, pages + 1)]))
        elapsed = time.perf_counter() - start
        rss = dict(pool.map(_peak_rss_mb, range(processes * 4)))
    return {"seconds": elapsed, "pages_per_s": pages / elapsed, "characters": chars,
            "peak_rss_mb_per_process": sorted(round(v, 1) for v in rss.values())}


# --- (b) pagemill ------------------------------------------------------------------------------
def _worker_env(settings: Settings, threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        # glibc makes one malloc arena per thread that allocates; OCR buffers allocated from
        # asyncio's executor threads then stay resident in several arenas. Two arenas suffice.
        "MALLOC_ARENA_MAX": "2",
        "REDIS_URL": settings.redis_url or "",
        "DATABASE_URL": settings.database_url.get_secret_value() if settings.database_url else "",
        "PAGEMILL_DB_SCHEMA": settings.db_schema,
        "PAGEMILL_REDIS_NAMESPACE": settings.redis_namespace,
        "PAGEMILL_DATA_DIR": str(settings.data_dir),
        "PAGEMILL_OCR_ENGINE": settings.ocr_engine,
        "PAGEMILL_OCR_PROFILE": settings.ocr_profile,
        "PAGEMILL_OCR_THREADS": str(settings.ocr_threads),
        "PAGEMILL_LOG_LEVEL": "WARNING",
        "dramatiq_queue_prefetch": str(threads),
        # Dramatiq's idle poll backs off up to this (ms); a busy consumer counts as idle, so at
        # the default 1000 ms each finished page waits up to a second before the next is fetched.
        "dramatiq_worker_timeout": "100",
    })
    return env


def _vmhwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def _submit_and_wait(settings: Settings, data: bytes) -> tuple[float, list[int]]:
    from actors.ocr import ocr_document
    from pipeline import documents
    from pipeline.context import Context
    from pipeline.jobs import DocumentStatus

    async def chunks():  # type: ignore[no-untyped-def]
        yield data

    ctx = await Context.open(settings)
    try:
        doc = await documents.ingest_upload(ctx, chunks(), filename="bench.pdf")
        start = time.perf_counter()
        ocr_document.send(document_id=str(doc.id))
        while True:
            current = await ctx.store.get_document(doc.id)
            if current.status.is_final:
                break
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - start
        if current.status is not DocumentStatus.COMPLETED:
            raise SystemExit(f"pagemill run ended {current.status}: {current.error}")
        durations = [p.duration_ms or 0 for p in await ctx.store.list_pages(doc.id)]
        return elapsed, durations
    finally:
        await ctx.aclose()


def run_pagemill(pdf_bytes: bytes, warm_bytes: bytes, pages: int, processes: int, threads: int,
                 settings: Settings) -> dict[str, object]:
    import psutil

    from actors.broker import setup_broker

    broker = setup_broker(settings)
    import actors.ocr  # noqa: F401

    # As the Procfile's ocr process: actors.ocr only (OCR workers do not import actors.llm).
    cmd = [sys.executable, "-m", "dramatiq", "actors.broker:setup_broker", "actors.ocr", "--queues", settings.ocr_queue,
           "--processes", str(processes), "--threads", str(threads)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=_worker_env(settings, threads), start_new_session=True)
    try:
        for _ in range(processes):
            asyncio.run(_submit_and_wait(settings, warm_bytes))  # load models in every process
        elapsed, durations = asyncio.run(_submit_and_wait(settings, pdf_bytes))
        children = psutil.Process(proc.pid).children(recursive=True)
        rss = sorted(round(_vmhwm_mb(c.pid), 1) for c in children)
    finally:
        proc.send_signal(signal.SIGTERM)  # the main process only: it forwards SIGTERM to its workers
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        broker.flush_all()
    # Page time measured inside the workers (render + OCR): what is left of the wall time
    # is queueing, fan-out, the job store and aggregation, or processes left idle at the end.
    busy = sum(durations) / 1000
    return {"seconds": elapsed, "pages_per_s": pages / elapsed, "peak_rss_mb_per_process": rss,
            "page_seconds_total": round(busy, 2), "utilisation": round(busy / (elapsed * processes), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=16)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--threads", type=int, default=1, help="dramatiq threads per worker process")
    parser.add_argument("--engine", default="onnx")
    parser.add_argument("--profiles", default=None, help="onnx profiles, comma-separated (default: the default)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--one-profile-json", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    profiles = args.profiles.split(",") if args.profiles else [ExplicitSettings().ocr_profile]
    runs: dict[str, dict[str, object]] = {}
    if args.one_profile_json is not None:  # child: one profile (a process sets up its broker once)
        runs = {profiles[0]: run_profile(args, profiles[0])}
        args.one_profile_json.write_text(json.dumps(runs[profiles[0]]))
        return
    if len(profiles) == 1:
        runs = {profiles[0]: run_profile(args, profiles[0])}
    else:
        for profile in profiles:
            with tempfile.NamedTemporaryFile(suffix=".json") as out:
                argv = ["--pages", str(args.pages), "--processes", str(args.processes), "--threads",
                        str(args.threads), "--engine", args.engine, "--redis-url", args.redis_url,
                        "--database-url", args.database_url]  # fmt: skip
                subprocess.run(
                    [sys.executable, __file__, *argv, "--profiles", profile, "--one-profile-json", out.name],
                    check=True, cwd=ROOT,
                )  # fmt: skip
                runs[profile] = json.loads(Path(out.name).read_text())
    report: dict[str, object] = {
        "pages": args.pages, "processes": args.processes, "threads": args.threads, "engine": args.engine,
        "cores": os.cpu_count(), "profiles": runs,
    }  # fmt: skip
    if len(runs) == 1:  # the single-profile shape earlier runs wrote
        report.update({"profile": profiles[0], **runs[profiles[0]]})
    print(f"\n{'profile':<10}{'run':<28}{'seconds':>9}{'pages/s':>9}  peak RSS per process (MB)")
    for profile, run in runs.items():
        baseline, pagemill = run["baseline"], run["pagemill"]
        assert isinstance(baseline, dict) and isinstance(pagemill, dict)
        print(f"{profile:<10}{'(a) plain loop, 1 proc/core':<28}{baseline['seconds']:>9.2f}"
              f"{baseline['pages_per_s']:>9.3f}  {baseline['peak_rss_mb_per_process']}")
        print(f"{profile:<10}{'(b) pagemill end to end':<28}{pagemill['seconds']:>9.2f}"
              f"{pagemill['pages_per_s']:>9.3f}  {pagemill['peak_rss_mb_per_process']}")
        print(f"{profile:<10}ratio b/a = {run['ratio_b_over_a']:.3f} (target >= 0.9)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ocr_throughput.json").write_text(json.dumps(report, indent=2))


def run_profile(args: argparse.Namespace, profile: str) -> dict[str, object]:
    """(a) and (b) for one onnx profile on the same pages."""
    images = scan_pages()
    selected = [images[i % len(images)] for i in range(args.pages)]
    data = make_pdf(selected)
    warm = make_pdf(selected[:1])
    with tempfile.TemporaryDirectory() as tmp:
        pdf_path = Path(tmp) / "bench.pdf"
        pdf_path.write_bytes(data)
        settings = ExplicitSettings(
            redis_url=args.redis_url, database_url=args.database_url, ocr_engine=args.engine, ocr_threads=1,
            ocr_profile=profile, redis_namespace=f"bench-{uuid.uuid4().hex[:8]}",
            db_schema=f"bench_{uuid.uuid4().hex[:8]}", data_dir=Path(tmp) / "data",
        )  # fmt: skip
        baseline = run_baseline(pdf_path, args.pages, args.processes, settings)
        pagemill = run_pagemill(data, warm, args.pages, args.processes, args.threads, settings)
        asyncio.run(cleanup_database(args.database_url, settings.db_schema))
    ratio = pagemill["pages_per_s"] / baseline["pages_per_s"]  # type: ignore[operator]
    return {"baseline": baseline, "pagemill": pagemill, "ratio_b_over_a": round(ratio, 3)}


if __name__ == "__main__":
    main()
