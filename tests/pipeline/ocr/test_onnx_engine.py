"""The default engine end to end on real scans: quality bounds measured with margin, orientation, order.

Measured on 2 cores (benchmarks/ocr_quality.py): CER phototest 0.000 (also turned 90°/180°),
UNLV magazine page 0.026, typewriter (nl) 0.021, francais (fr) 0.043 (PP-OCRv5's dictionary
lacks î ï œ ÿ and the model confuses ô/ò, û/ù).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from pipeline.ocr import OcrEngine, get_engine, recognize_page
from pipeline.ocr.scoring import cer
from pipeline.settings import ExplicitSettings
from tests.pipeline.ocr.conftest import load_scan, truth

MIN_CONFIDENCE = 0.5


@pytest.mark.parametrize(
    ("scan", "languages", "max_cer"),
    [
        ("tt_phototest.tif", ("en",), 0.02),
        ("unlv_8087_054.tif", ("en",), 0.05),  # several columns, a captioned picture, a footer
        ("om_typewriter.png", ("nl", "en"), 0.05),
        ("om_francais.pdf", ("fr", "en"), 0.08),
    ],
)
def test_cer_on_real_scans(
    onnx_settings: ExplicitSettings, scan: str, languages: tuple[str, ...], max_cer: float
) -> None:
    engine = get_engine(onnx_settings, languages)
    (page,) = load_scan(scan)
    result = recognize_page(engine, page, min_confidence=MIN_CONFIDENCE)
    assert cer(truth(scan)[0], result.text) <= max_cer
    assert result.rotation == 0
    assert set(result.timings) >= {"orientation", "detect", "recognize", "layout"}


@pytest.mark.parametrize(
    ("scan", "rotation"), [("tt_phototest_rotL.png", 90), ("tt_phototest_rot180.png", 180)]
)
def test_turned_pages_come_out_upright(onnx_engine: OcrEngine, scan: str, rotation: int) -> None:
    (page,) = load_scan(scan)
    result = recognize_page(onnx_engine, page, min_confidence=MIN_CONFIDENCE)
    assert result.rotation == rotation
    assert cer(truth(scan)[0], result.text) <= 0.02  # the upright page scores 0.000
    assert (result.width, result.height) == (640, 480)


def test_page_turned_right_and_skewed_three_degrees(onnx_engine: OcrEngine) -> None:
    import cv2

    (page,) = load_scan("tt_phototest.tif")
    turned = np.ascontiguousarray(np.rot90(page, k=-1))  # 90° clockwise: needs 270° to undo
    h, w = turned.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), 3.0, 1.0)  # 3° counter-clockwise
    skewed = cv2.warpAffine(turned, matrix, (w, h), borderValue=(255, 255, 255))
    result = recognize_page(onnx_engine, skewed, min_confidence=MIN_CONFIDENCE)
    assert result.rotation == 270
    assert result.skew == pytest.approx(3.0, abs=1.0)  # rotations commute: still 3° counter-clockwise
    assert cer(truth("tt_phototest.tif")[0], result.text) <= 0.03


def test_min_confidence_drops_unsure_lines(onnx_engine: OcrEngine) -> None:
    (page,) = load_scan("tt_phototest.tif")
    everything = recognize_page(onnx_engine, page, min_confidence=0.0)
    assert everything.lines and all(0.0 <= line.confidence <= 1.0 for line in everything.lines)
    cut = sorted(line.confidence for line in everything.lines)[len(everything.lines) // 2]
    kept = recognize_page(onnx_engine, page, min_confidence=cut)
    assert 0 < len(kept.lines) < len(everything.lines)
    assert all(line.confidence >= cut for line in kept.lines)
    assert recognize_page(onnx_engine, page, min_confidence=1.0).lines == ()


def test_blank_page_has_no_lines(onnx_engine: OcrEngine) -> None:
    blank = np.full((600, 400, 3), 255, dtype=np.uint8)
    result = recognize_page(onnx_engine, blank, min_confidence=MIN_CONFIDENCE)
    assert result.lines == () and result.text == "" and result.mean_confidence == 0.0


def test_threads_share_one_engine(onnx_engine: OcrEngine) -> None:
    pages = [load_scan("tt_phototest.tif")[0], load_scan("tt_phototest_rot180.png")[0]] * 2
    with ThreadPoolExecutor(max_workers=2) as pool:
        texts = list(pool.map(lambda p: recognize_page(onnx_engine, p, min_confidence=0.5).text, pages))
    assert texts[0] == texts[1] == texts[2] == texts[3]


def test_rejects_a_grey_image(onnx_engine: OcrEngine) -> None:
    with pytest.raises(ValueError, match="RGB"):
        recognize_page(onnx_engine, np.zeros((10, 10), dtype=np.uint8), min_confidence=0.5)
