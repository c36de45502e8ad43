"""Real scans with ground truth, and one loaded engine per kind for the whole session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pypdfium2 as pdfium
import pytest
from PIL import Image as PILImage

from pipeline.ocr import OcrEngine, get_engine
from pipeline.ocr.base import Image
from pipeline.settings import ExplicitSettings

RESOURCES = Path(__file__).resolve().parents[2] / "resources" / "ocr"
DPI = 180  # px per inch for PDF pages, the workers' default
THREADS = 2  # onnxruntime threads: the CI machines have 2 cores


def load_scan(name: str) -> list[Image]:
    """RGB pages of a scan in tests/resources/ocr."""
    path = RESOURCES / name
    if path.suffix == ".pdf":
        doc = pdfium.PdfDocument(str(path))
        try:
            return [
                np.asarray(doc[i].render(scale=DPI / 72).to_pil().convert("RGB")) for i in range(len(doc))
            ]
        finally:
            doc.close()
    with PILImage.open(path) as image:
        return [np.asarray(image.convert("RGB"))]


def truth(name: str) -> list[str]:
    """Ground-truth text per page of a scan."""
    return (RESOURCES / (Path(name).stem + ".gt.txt")).read_text(encoding="utf-8").split("\f")


@pytest.fixture(scope="session")
def onnx_settings() -> ExplicitSettings:
    return ExplicitSettings(ocr_engine="onnx", ocr_threads=THREADS)


@pytest.fixture(scope="session")
def onnx_engine(onnx_settings: ExplicitSettings) -> OcrEngine:
    return get_engine(onnx_settings, ("en",))


@pytest.fixture(scope="session")
def tesseract_settings() -> ExplicitSettings:
    return ExplicitSettings(ocr_engine="tesseract", ocr_threads=1)
