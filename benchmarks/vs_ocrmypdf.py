"""pagemill's OCR side by side with OCRmyPDF on the same scanned pages, in one run.

The pages: the dense scans among the OCR fixtures (UNLV magazine page, typewriter page, French
page, the German/French table page), each three times: one 12-page image-only PDF, images at
their own resolution (the typewriter PNG carries none: 300 dpi is assumed). Both tools get the
same file and every language on it, and are timed end to end as a user runs them:

* ``pagemill ocr FILE --format json`` once per onnx profile (``PAGEMILL_OCR_PROFILE``), with
  ``PAGEMILL_OCR_MODE=force`` and embedded Redis/PostgreSQL in a scratch data dir; the CLI's
  in-process worker runs two pages at a time. Its fixed start-up cost (embedded servers, models)
  is measured apart on a one-page blank image.
* ``ocrmypdf -j <cores> --force-ocr --output-type pdf --optimize 0``: its fastest settings (no
  PDF/A conversion, no image optimisation), text read back with ``pdftotext -raw``: in the
  order Tesseract wrote it (poppler's own reordering scatters the words of a sparse page).

Scores (``pipeline.ocr.scoring``) are pooled over the pages against the fixtures' ground truth.
Timings on a shared machine are noisy: compare rows of one run, as ratios. Needs the ``bench``
extra (ocrmypdf) and Debian's tesseract-ocr (+ fra, deu, nld), ghostscript and poppler-utils.

    .venv/bin/python benchmarks/vs_ocrmypdf.py [--profiles cascade,fast] [--copies 3]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESOURCES = ROOT / "tests" / "resources" / "ocr"
RESULTS = ROOT / "benchmarks" / "results" / "vs_ocrmypdf.json"
BIN = Path(sys.executable).parent
# The dense scans (tests/resources/ocr/MANIFEST.md) and the resolution of images without one.
SCANS = ("unlv_8087_054.tif", "om_typewriter.png", "om_francais.pdf", "pm_de_fr_table.png")
ASSUMED_DPI = 300
PAGEMILL_LANGS = ("en", "nl", "fr", "german")
TESSERACT_LANGS = "eng+nld+fra+deu"

sys.path.insert(0, str(ROOT))


def build_pdf(target: Path, copies: int) -> list[str]:
    """The scans as one image-only PDF (each ``copies`` times, in turn); the truth per page."""
    import img2pdf
    from PIL import Image
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    truths: list[str] = []
    for _ in range(copies):
        for name in SCANS:
            path = RESOURCES / name
            truths += (RESOURCES / (path.stem + ".gt.txt")).read_text(encoding="utf-8").split("\f")
            if path.suffix == ".pdf":
                writer.append(PdfReader(path))
                continue
            with Image.open(path) as image:
                dpi = image.info.get("dpi") or (ASSUMED_DPI, ASSUMED_DPI)
                if image.mode == "P":  # img2pdf refuses palette images with transparency; store grey
                    buffer = io.BytesIO()
                    image.convert("L").save(buffer, format="PNG")
                    data = buffer.getvalue()
                else:
                    data = path.read_bytes()
            layout = img2pdf.get_fixed_dpi_layout_fun((round(dpi[0]), round(dpi[1])))
            writer.append(PdfReader(io.BytesIO(img2pdf.convert(data, layout_fun=layout))))
    with target.open("wb") as fh:
        writer.write(fh)
    return truths


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds (the command and every process it waited for) of one command."""
    cpu, started = _children_cpu_s(), time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, cwd=ROOT)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall, _children_cpu_s() - cpu


def _pagemill_env(data_dir: Path, profile: str, ocr_threads: int | None) -> dict[str, str]:
    # Only what the CLI needs: no REDIS_URL/DATABASE_URL/S3_* means embedded servers.
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")}
    env.update({
        "PAGEMILL_DATA_DIR": str(data_dir),
        "PAGEMILL_OCR_MODE": "force",
        "PAGEMILL_OCR_PROFILE": profile,
        "PAGEMILL_LOG_LEVEL": "WARNING",
    })  # fmt: skip
    if ocr_threads is not None:
        env["PAGEMILL_OCR_THREADS"] = str(ocr_threads)
    return env


def run_pagemill(pdf: Path, work: Path, profile: str, ocr_threads: int | None) -> dict[str, Any]:
    """``pagemill ocr`` on the PDF with one profile: wall, CPU and text per page."""
    out = work / f"pagemill-{profile}"
    cmd = [str(BIN / "pagemill"), "ocr", str(pdf), "--format", "json", "--out", str(out)]
    for lang in PAGEMILL_LANGS:
        cmd += ["--lang", lang]
    wall, cpu = _timed(cmd, _pagemill_env(work / "data", profile, ocr_threads))
    result = json.loads((out / f"{pdf.stem}.json").read_text(encoding="utf-8"))
    pages = sorted(result["pages"], key=lambda p: p["page_no"])
    return {"wall_s": wall, "cpu_s": cpu, "texts": [p["text"] for p in pages], "engine": result["engine"]}


def pagemill_startup(work: Path, profile: str, ocr_threads: int | None) -> float:
    """Wall seconds of ``pagemill ocr`` on a blank one-page image: its fixed cost per run."""
    from PIL import Image

    blank = work / "blank.png"
    Image.new("L", (200, 100), 255).save(blank)
    cmd = [str(BIN / "pagemill"), "ocr", str(blank), "--format", "json", "--out", str(work / "blank")]
    wall, _ = _timed(cmd, _pagemill_env(work / "data", profile, ocr_threads))
    return wall


def check_tools() -> None:
    """Exit with what to install when a tool the comparison runs is missing."""
    for tool in ("ocrmypdf", "pagemill"):
        if not (BIN / tool).exists():
            raise SystemExit(f"{BIN / tool} is missing: pip install -e '.[bench]'")
    if shutil.which("pdftotext") is None or shutil.which("tesseract") is None:
        raise SystemExit(
            "needs pdftotext and tesseract: apt-get install poppler-utils tesseract-ocr ghostscript"
        )


def pdf_texts(pdf: Path) -> list[str]:
    """Each page's text as ``pdftotext -raw`` reads it (in the order it was written)."""
    from pypdf import PdfReader

    texts = []
    for n in range(1, len(PdfReader(pdf).pages) + 1):
        proc = subprocess.run(
            ["pdftotext", "-raw", "-enc", "UTF-8", "-f", str(n), "-l", str(n), str(pdf), "-"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        texts.append(proc.stdout)
    return texts


def run_ocrmypdf(pdf: Path, work: Path, jobs: int, *, force: bool = True) -> dict[str, Any]:
    """``ocrmypdf [--force-ocr]`` on the PDF: wall, CPU, output and text per page (``pdftotext -raw``)."""
    out = work / "ocrmypdf.pdf"
    cmd = [str(BIN / "ocrmypdf"), "-j", str(jobs), *(["--force-ocr"] if force else []), "--output-type", "pdf",
           "--optimize", "0", "-l", TESSERACT_LANGS, "--quiet", str(pdf), str(out)]  # fmt: skip
    wall, cpu = _timed(cmd, dict(os.environ))
    version = subprocess.run(
        [str(BIN / "ocrmypdf"), "--version"], capture_output=True, text=True, check=False
    )
    return {"wall_s": wall, "cpu_s": cpu, "texts": pdf_texts(out), "engine": f"ocrmypdf {version.stdout.strip()}",
            "output": out}  # fmt: skip


def scored(run: dict[str, Any], truths: list[str]) -> dict[str, Any]:
    """Pooled CER/WER and mean bag-of-words F1 over the pages, plus speed."""
    from pipeline.ocr.scoring import score

    scores = [score(t, h) for t, h in zip(truths, run["texts"], strict=True)]
    chars = sum(s.ref_chars for s in scores)
    words = sum(s.ref_words for s in scores)
    pages = len(truths)
    per_scan = {}
    for k, name in enumerate(SCANS):
        own = scores[k :: len(SCANS)]
        per_scan[name] = round(sum(s.cer * s.ref_chars for s in own) / sum(s.ref_chars for s in own), 4)
    return {
        "engine": run["engine"],
        "pages": pages,
        "wall_s": round(run["wall_s"], 2),
        "cpu_s": round(run["cpu_s"], 2),
        "pages_per_s": round(pages / run["wall_s"], 3),
        "cpu_s_per_page": round(run["cpu_s"] / pages, 2),
        "cer": round(sum(s.cer * s.ref_chars for s in scores) / chars, 4),
        "wer": round(sum(s.wer * s.ref_words for s in scores) / words, 4),
        "bow_f1": round(sum(s.bow_f1 for s in scores) / pages, 4),
        "cer_per_scan": per_scan,
    }


def main() -> None:
    """Run both tools on the same PDF, print a table, write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", default="cascade,fast,accurate,v5", help="onnx profiles to run")
    parser.add_argument("--copies", type=int, default=3, help="times each scan appears (3 -> 12 pages)")
    parser.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)), help="ocrmypdf -j")
    parser.add_argument("--ocr-threads", type=int, default=None, help="PAGEMILL_OCR_THREADS (default: unset)")
    parser.add_argument("--keep", type=Path, default=None, help="keep the PDF and outputs in this directory")
    parser.add_argument("--results", type=Path, default=RESULTS, help="JSON report path")
    args = parser.parse_args()

    check_tools()
    work = Path(tempfile.mkdtemp(prefix="vs-ocrmypdf-")) if args.keep is None else args.keep
    work.mkdir(parents=True, exist_ok=True)
    pdf = work / "dense_scans.pdf"
    truths = build_pdf(pdf, args.copies)
    profiles = args.profiles.split(",")
    # First run on a new data dir creates the embedded database: keep it out of every timing.
    pagemill_startup(work, profiles[0], args.ocr_threads)
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{len(os.sched_getaffinity(0))} cores",
        "pages": len(truths),
        "scans": list(SCANS),
        "copies": args.copies,
        "ocrmypdf_command": f"ocrmypdf -j {args.jobs} --force-ocr --output-type pdf --optimize 0 -l {TESSERACT_LANGS}",
        "pagemill_command": "PAGEMILL_OCR_MODE=force PAGEMILL_OCR_PROFILE=<profile> pagemill ocr FILE --format json"
        + "".join(f" --lang {lang}" for lang in PAGEMILL_LANGS)
        + (f" (PAGEMILL_OCR_THREADS={args.ocr_threads})" if args.ocr_threads is not None else ""),
        "runs": {},
    }
    report["runs"]["ocrmypdf"] = scored(run_ocrmypdf(pdf, work, args.jobs), truths)
    print(f"ocrmypdf: {report['runs']['ocrmypdf']['pages_per_s']} pages/s", file=sys.stderr)
    for profile in profiles:
        run = scored(run_pagemill(pdf, work, profile, args.ocr_threads), truths)
        run["startup_s"] = round(pagemill_startup(work, profile, args.ocr_threads), 2)
        run["pages_per_s_after_startup"] = round(run["pages"] / (run["wall_s"] - run["startup_s"]), 3)
        report["runs"][f"pagemill {profile}"] = run
        print(f"pagemill {profile}: {run['pages_per_s']} pages/s", file=sys.stderr)
    base = report["runs"]["ocrmypdf"]["pages_per_s"]
    print(
        f"\n{report['pages']} pages ({', '.join(SCANS)} x{args.copies}), {report['machine']}, {report['date']}"
    )
    print(f"{'run':<20}{'wall s':>8}{'pages/s':>9}{'x ocrmypdf':>11}{'CPU s/page':>11}{'CER':>8}{'WER':>8}"
          f"{'BoW F1':>8}  {'start-up s':>10}")  # fmt: skip
    for label, run in report["runs"].items():
        run["speed_vs_ocrmypdf"] = round(run["pages_per_s"] / base, 2)
        print(
            f"{label:<20}{run['wall_s']:>8.1f}{run['pages_per_s']:>9.3f}{run['speed_vs_ocrmypdf']:>11.2f}"
            f"{run['cpu_s_per_page']:>11.2f}{run['cer']:>8.4f}{run['wer']:>8.4f}{run['bow_f1']:>8.3f}"
            f"  {run.get('startup_s', float('nan')):>10.1f}"
        )
    print("CER per scan: " + "; ".join(
        f"{label}: " + ", ".join(f"{k.split('.')[0]} {v:.3f}" for k, v in run["cer_per_scan"].items())
        for label, run in report["runs"].items()
    ))  # fmt: skip
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    print(f"wrote {args.results}")
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
