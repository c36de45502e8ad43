"""OCR quality and cost per engine on the real scans in tests/resources/ocr.

For each engine, a fresh subprocess loads it once and OCRs every page (PDFs rendered with
pypdfium2 at 180 dpi, images as they are), so its peak RSS is that of a worker with the model
loaded. The parent scores the text (CER, WER, bag-of-words F1; ``pipeline.ocr.scoring``),
prints a table and writes ``benchmarks/results/ocr_quality.json``.

Engines: ``onnx`` (once per profile, ``onnx:<profile>``; ``--profiles`` picks them) and
``tesseract`` through ``recognize_page`` (orientation, layout), plus references as they come:
``tesseract-raw`` (tesseract's own reading order, no orientation) and ``rapidocr``
(rapidocr-onnxruntime's bundled models, lines top to bottom) when installed.

Cost per page is CPU seconds (this process and its children, i.e. onnxruntime's threads and
tesseract's subprocesses), which other load on the machine disturbs less than wall time does;
wall seconds are reported too. Timings on a shared 2-core machine are still noisy: compare
engines within one run, as ratios.

    python benchmarks/ocr_quality.py [--engines onnx,tesseract] [--profiles accurate,fast] [--threads 2]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESOURCES = ROOT / "tests" / "resources" / "ocr"
RESULTS = ROOT / "benchmarks" / "results" / "ocr_quality.json"
DPI = 180  # px per inch for PDF pages, as PADDLEOCR_PDF_DPI's default
MIN_CONFIDENCE = 0.5  # PADDLEOCR_MIN_CONFIDENCE's default
# Scan -> languages (tests/resources/ocr/MANIFEST.md); English is merged in as workers do.
SCANS: dict[str, tuple[str, ...]] = {
    "tt_phototest.tif": ("en",),
    "tt_phototest_rotL.png": ("en",),
    "tt_phototest_rot180.png": ("en",),
    "unlv_8087_054.tif": ("en",),
    "om_typewriter.png": ("nl",),
    "om_francais.pdf": ("fr",),
    "pm_de_fr_table.png": ("german", "fr"),
}
ENGINES = ("onnx", "tesseract", "tesseract-raw", "rapidocr")

sys.path.insert(0, str(ROOT))


def load_pages(name: str) -> list[Any]:
    """RGB pages of one scan."""
    import numpy as np
    import pypdfium2 as pdfium
    from PIL import Image

    path = RESOURCES / name
    if path.suffix == ".pdf":
        doc = pdfium.PdfDocument(str(path))
        return [np.asarray(doc[i].render(scale=DPI / 72).to_pil().convert("RGB")) for i in range(len(doc))]
    return [np.asarray(Image.open(path).convert("RGB"))]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _cpu_s() -> float:
    """CPU seconds of this process and its waited-for children (tesseract runs one per page)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _recognizer(engine: str, threads: int) -> Any:
    """A function (image, langs) -> text for ``engine`` (``onnx:<profile>``), models loaded once per language."""
    if engine == "rapidocr":
        from rapidocr_onnxruntime import RapidOCR

        rapid = RapidOCR(intra_op_num_threads=threads)

        def run_rapid(image: Any, langs: tuple[str, ...]) -> str:
            result, _ = rapid(image[:, :, ::-1])
            return "\n".join(item[1] for item in result or [])

        return run_rapid
    from pipeline.ocr import get_engine, recognize_page
    from pipeline.settings import ExplicitSettings

    name, _, profile = engine.removesuffix("-raw").partition(":")
    settings = ExplicitSettings(
        ocr_engine=name, ocr_threads=threads, **({"ocr_profile": profile} if profile else {})
    )
    if engine.endswith("-raw"):
        return lambda image, langs: get_engine(settings, (*langs, "en")).recognize(image).text
    return lambda image, langs: (
        recognize_page(get_engine(settings, (*langs, "en")), image, min_confidence=MIN_CONFIDENCE).text
    )


def worker(engine: str, threads: int) -> None:
    """Child process: OCR every scan with one engine, print JSON with texts, seconds and RSS."""
    started = time.perf_counter()
    recognize = _recognizer(engine, threads)
    # Load the models up front (all languages used) so load time and RSS are reported apart.
    import numpy as np

    blank = np.full((64, 64, 3), 255, dtype=np.uint8)
    for langs in sorted(set(SCANS.values())):
        recognize(blank, langs)
    out: dict[str, Any] = {"load_s": time.perf_counter() - started, "rss_loaded_mb": _rss_mb(), "scans": {}}
    for name, langs in SCANS.items():
        pages = load_pages(name)
        begun, cpu = time.perf_counter(), _cpu_s()
        texts = [recognize(page, langs) for page in pages]
        out["scans"][name] = {
            "texts": texts,
            "seconds": time.perf_counter() - begun,
            "cpu_s": _cpu_s() - cpu,
            "pages": len(pages),
        }
    out["rss_peak_mb"] = _rss_mb()
    # Tesseract runs as a child process per page: its memory shows here, not in ours.
    out["rss_children_peak_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps(out))


def run_engine(engine: str, threads: int) -> dict[str, Any] | None:
    """Scores for one engine from a fresh subprocess; None when the engine is unavailable."""
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", engine, "--threads", str(threads)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    if proc.returncode != 0:
        print(f"{engine}: unavailable ({proc.stderr.strip().splitlines()[-1:]})", file=sys.stderr)
        return None
    from pipeline.ocr.scoring import score

    raw = json.loads(proc.stdout.strip().splitlines()[-1])
    scans = {}
    for name, data in raw["scans"].items():
        truth = (RESOURCES / (Path(name).stem + ".gt.txt")).read_text(encoding="utf-8").split("\f")
        s = score("\n".join(truth), "\n".join(data["texts"]))
        scans[name] = {
            "cer": s.cer,
            "wer": s.wer,
            "bow_f1": s.bow_f1,
            "ref_chars": s.ref_chars,
            "pages_per_s": data["pages"] / data["seconds"],
            "seconds": data["seconds"],
            "cpu_s_per_page": data["cpu_s"] / data["pages"],
            "pages": data["pages"],
        }
    edits = sum(v["cer"] * v["ref_chars"] for v in scans.values())
    chars = sum(v["ref_chars"] for v in scans.values())
    return {
        "scans": scans,
        "pooled_cer": edits / chars,
        "mean_cer": sum(v["cer"] for v in scans.values()) / len(scans),
        "cpu_s_per_page": sum(v["cpu_s_per_page"] * v["pages"] for v in scans.values())
        / sum(v["pages"] for v in scans.values()),
        "wall_s_per_page": sum(v["seconds"] for v in scans.values())
        / sum(v["pages"] for v in scans.values()),
        "load_s": raw["load_s"],
        "rss_loaded_mb": raw["rss_loaded_mb"],
        "rss_peak_mb": raw["rss_peak_mb"],
        "rss_children_peak_mb": raw["rss_children_peak_mb"],
    }


def _describe(profile: str) -> dict[str, Any]:
    """The models (and cascade threshold) of an onnx profile, for the report."""
    from dataclasses import asdict

    from pipeline.ocr.profiles import PROFILES

    chosen = PROFILES.get(profile)
    return {k: v for k, v in asdict(chosen).items() if v is not None} if chosen else {}


def main() -> None:
    """Benchmark the engines, print a table, write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default=",".join(ENGINES), help="onnx runs once per --profiles entry")
    parser.add_argument("--profiles", default=None, help="onnx profiles (default: every one in PROFILES)")
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime/OpenMP threads per engine")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.threads)
        return
    report: dict[str, Any] = {
        "dpi": DPI,
        "min_confidence": MIN_CONFIDENCE,
        "threads": args.threads,
        "engines": {},
    }
    engines: list[str] = []
    for engine in args.engines.split(","):
        if engine == "onnx":
            from pipeline.ocr.profiles import PROFILES

            engines += [f"onnx:{p}" for p in (args.profiles.split(",") if args.profiles else PROFILES)]
        else:
            engines.append(engine)
    report["profiles"] = {e.partition(":")[2]: _describe(e.partition(":")[2]) for e in engines if ":" in e}
    for engine in engines:
        if engine == "rapidocr" and importlib.util.find_spec("rapidocr_onnxruntime") is None:
            continue
        result = run_engine(engine, args.threads)
        if result is not None:
            report["engines"][engine] = result
    print(
        f"{'engine':18s} {'scan':24s} {'CER':>7s} {'WER':>7s} {'BoW F1':>7s} {'CPU s/p':>8s} {'wall s/p':>8s}"
    )
    for engine, result in report["engines"].items():
        for name, s in result["scans"].items():
            print(
                f"{engine:18s} {name:24s} {s['cer']:7.3f} {s['wer']:7.3f} {s['bow_f1']:7.3f}"
                f" {s['cpu_s_per_page']:8.2f} {s['seconds'] / s['pages']:8.2f}"
            )
    print(
        f"\n{'engine':18s} {'pooled CER':>10s} {'mean CER':>9s} {'CPU s/page':>10s} {'wall s/page':>11s}"
        f" {'RSS loaded':>10s} {'RSS peak':>9s}"
    )
    for engine, result in report["engines"].items():
        print(
            f"{engine:18s} {result['pooled_cer']:10.4f} {result['mean_cer']:9.4f} {result['cpu_s_per_page']:10.2f}"
            f" {result['wall_s_per_page']:11.2f} {result['rss_loaded_mb']:8.0f} MB {result['rss_peak_mb']:6.0f} MB"
            + (
                f" (+{result['rss_children_peak_mb']:.0f} MB tesseract)"
                if result["rss_children_peak_mb"]
                else ""
            )
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
