"""Raw calls to the ``tesseract`` command line: list languages, OCR to TSV, orientation (OSD).

Kept apart from the adapter (as OCRmyPDF does in ``_exec/tesseract.py``): this module knows
the binary, its arguments and its output formats; ``tesseract.py`` maps results onto our types.
Images go through stdin as PNM (uncompressed, so encoding costs nothing) and never touch disk.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import cache

import cv2

from pipeline.errors import EngineUnavailableError
from pipeline.ocr.base import Image

BINARY = "tesseract"
TIMEOUT = 180.0  # s per page: a page that takes longer is stuck, not slow
OSD_TIMEOUT = 30.0  # s
_ROTATE = re.compile(r"^Rotate:\s*(\d+)", re.MULTILINE)
_CONFIDENCE = re.compile(r"^Orientation confidence:\s*([\d.]+)", re.MULTILINE)


def binary() -> str:
    """Path of the tesseract binary; EngineUnavailableError saying how to install it."""
    found = shutil.which(BINARY)
    if found is None:
        raise EngineUnavailableError(
            "the tesseract engine needs the tesseract binary on PATH: apt-get install tesseract-ocr "
            "(plus tesseract-ocr-<lang> packs), or choose PAGEMILL_OCR_ENGINE=onnx"
        )
    return found


@cache
def languages() -> frozenset[str]:
    """Traineddata names tesseract can load (``eng``, ``fra``, ``osd``...)."""
    proc = subprocess.run([binary(), "--list-langs"], capture_output=True, text=True, timeout=30, check=False)
    if proc.returncode != 0:
        raise EngineUnavailableError(f"tesseract --list-langs failed: {proc.stderr.strip()[:200]}")
    # First line is a header ('List of available languages in "..." (n):').
    return frozenset(line.strip() for line in proc.stdout.splitlines()[1:] if line.strip())


def _pnm(image: Image) -> bytes:
    ok, encoded = cv2.imencode(".ppm", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("could not encode the page for tesseract")
    return encoded.tobytes()


def _env(threads: int) -> dict[str, str]:
    # Tesseract's OpenMP would spawn one thread per core in every worker process: oversubscription.
    return {**os.environ, "OMP_THREAD_LIMIT": str(max(1, threads))}


def tsv(image: Image, langs: str, *, dpi: int = 0, threads: int = 1, psm: int = 3) -> str:
    """Tesseract's TSV output (one row per page/block/paragraph/line/word) for ``image``."""
    args = [binary(), "-", "-", "-l", langs, "--psm", str(psm)]
    if dpi:
        args += ["--dpi", str(dpi)]
    proc = subprocess.run(
        args + ["tsv"],
        input=_pnm(image),
        capture_output=True,
        timeout=TIMEOUT,
        env=_env(threads),
        check=False,
    )
    if proc.returncode != 0:
        raise EngineUnavailableError(
            f"tesseract failed: {proc.stderr.decode(errors='replace').strip()[:300]}"
        )
    return proc.stdout.decode("utf-8", errors="replace")


def osd(image: Image) -> tuple[int, float]:
    """(degrees to rotate clockwise, confidence) from tesseract's orientation detection; (0, 0) if unsure."""
    proc = subprocess.run(
        [binary(), "-", "-", "--psm", "0"],
        input=_pnm(image),
        capture_output=True,
        timeout=OSD_TIMEOUT,
        env=_env(1),
        check=False,
    )
    out = proc.stdout.decode(errors="replace")
    rotate, confidence = _ROTATE.search(out), _CONFIDENCE.search(out)
    if proc.returncode != 0 or rotate is None or confidence is None:
        return 0, 0.0  # e.g. "Too few characters": nothing to go on
    return int(rotate.group(1)) % 360, float(confidence.group(1))
