"""Searchable PDFs: pagemill against OCRmyPDF on the same scanned pages, in one run.

The pages are those of ``vs_ocrmypdf.py`` (the dense scans, each ``--copies`` times, as one
image-only PDF). Each tool makes a searchable PDF, as a user runs it:

* ``pagemill ocr FILE --format pdf --format json`` (embedded servers, in-process worker, two
  pages at a time; its fixed start-up is measured apart on a blank one-page image);
* ``ocrmypdf -j <cores> --output-type pdf --optimize 0``: no PDF/A conversion, no image
  optimisation (the pages are image-only, so no ``--force-ocr`` and no rasterising).

Both PDFs are read back with ``pdftotext -raw`` and scored against the ground truth (pooled CER,
WER, bag-of-words F1); pagemill's own text (result.json) is scored too, to show what the PDF's
text layer loses against it. Output size is compared with the input's. Timings on a shared
machine are noisy: compare rows of one run, as ratios.

    .venv/bin/python benchmarks/searchable_pdf.py [--profile cascade] [--copies 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.vs_ocrmypdf import (  # the repository root goes on the path first
    BIN,
    PAGEMILL_LANGS,
    SCANS,
    TESSERACT_LANGS,
    _pagemill_env,
    _timed,
    build_pdf,
    check_tools,
    pagemill_startup,
    pdf_texts,
    run_ocrmypdf,
    scored,
)

RESULTS = ROOT / "benchmarks" / "results" / "searchable_pdf.json"


def run_pagemill(pdf: Path, work: Path, profile: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``pagemill ocr --format pdf --format json``: the PDF's text run, and its own (JSON) text run."""
    out = work / f"pagemill-{profile}"
    cmd = [str(BIN / "pagemill"), "ocr", str(pdf), "--format", "pdf", "--format", "json", "--out", str(out)]
    for lang in PAGEMILL_LANGS:
        cmd += ["--lang", lang]
    env = _pagemill_env(work / "data", profile, None)
    env["PAGEMILL_OCR_MODE"] = "auto"  # image-only pages: every one is OCRed anyway
    wall, cpu = _timed(cmd, env)
    result = json.loads((out / f"{pdf.stem}.json").read_text(encoding="utf-8"))
    own = [p["text"] for p in sorted(result["pages"], key=lambda p: p["page_no"])]
    output = out / f"{pdf.stem}.pdf"
    engine = f"pagemill {profile}"
    as_pdf = {"wall_s": wall, "cpu_s": cpu, "texts": pdf_texts(output), "engine": engine, "output": output}
    return as_pdf, {"wall_s": wall, "cpu_s": cpu, "texts": own, "engine": engine}


def main() -> None:
    """Run both tools on the same PDF, print a table, write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cascade", help="pagemill onnx profile (PAGEMILL_OCR_PROFILE)")
    parser.add_argument("--copies", type=int, default=3, help="times each scan appears (3 -> 12 pages)")
    parser.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)), help="ocrmypdf -j")
    parser.add_argument("--keep", type=Path, default=None, help="keep the PDFs in this directory")
    parser.add_argument("--results", type=Path, default=RESULTS, help="JSON report path")
    args = parser.parse_args()
    check_tools()
    work = Path(tempfile.mkdtemp(prefix="searchable-pdf-")) if args.keep is None else args.keep
    work.mkdir(parents=True, exist_ok=True)
    source = work / "dense_scans.pdf"
    truths = build_pdf(source, args.copies)
    pagemill_startup(work, args.profile, None)  # creates the embedded database outside the timings
    ocrmypdf = run_ocrmypdf(source, work, args.jobs, force=False)
    as_pdf, own = run_pagemill(source, work, args.profile)
    startup = pagemill_startup(work, args.profile, None)
    runs = {
        "ocrmypdf (pdftotext)": scored(ocrmypdf, truths) | {"bytes": ocrmypdf["output"].stat().st_size},
        f"pagemill {args.profile} (pdftotext)": scored(as_pdf, truths)
        | {"bytes": as_pdf["output"].stat().st_size},
        f"pagemill {args.profile} (own text)": scored(own, truths),
    }
    base = runs["ocrmypdf (pdftotext)"]["pages_per_s"]
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{len(os.sched_getaffinity(0))} cores",
        "pages": len(truths),
        "scans": list(SCANS),
        "copies": args.copies,
        "input_bytes": source.stat().st_size,
        "pagemill_startup_s": round(startup, 2),
        "ocrmypdf_command": f"ocrmypdf -j {args.jobs} --output-type pdf --optimize 0 -l {TESSERACT_LANGS}",
        "pagemill_command": f"PAGEMILL_OCR_PROFILE={args.profile} pagemill ocr FILE --format pdf --format json"
        + "".join(f" --lang {lang}" for lang in PAGEMILL_LANGS),
        "runs": runs,
    }
    print(f"\n{report['pages']} pages ({', '.join(SCANS)} x{args.copies}), {report['machine']}, {report['date']}; "
          f"input {report['input_bytes'] / 1e6:.2f} MB; pagemill start-up {startup:.1f} s (in its wall time)")  # fmt: skip
    print(
        f"{'run':<34}{'wall s':>8}{'pages/s':>9}{'x ocrmypdf':>11}{'CER':>8}{'WER':>8}{'BoW F1':>8}{'output MB':>11}"
    )
    for label, run in runs.items():
        run["speed_vs_ocrmypdf"] = round(run["pages_per_s"] / base, 2)
        size = f"{run['bytes'] / 1e6:>11.2f}" if "bytes" in run else f"{'':>11}"
        print(f"{label:<34}{run['wall_s']:>8.1f}{run['pages_per_s']:>9.3f}{run['speed_vs_ocrmypdf']:>11.2f}"
              f"{run['cer']:>8.4f}{run['wer']:>8.4f}{run['bow_f1']:>8.3f}{size}")  # fmt: skip
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str))
    print(f"wrote {args.results}")
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
