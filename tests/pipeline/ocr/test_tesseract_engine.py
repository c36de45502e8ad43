"""The Tesseract adapter: real binary on real scans, TSV mapping, language packs.

Measured through recognize_page (OSD orientation, our reading order): CER phototest 0.000 (also
turned), UNLV 0.037 (0.078 in tesseract's own reading order), typewriter 0.025, francais 0.021.
"""

from __future__ import annotations

import pytest

from pipeline.errors import EngineUnavailableError
from pipeline.ocr import get_engine, recognize_page
from pipeline.ocr.scoring import cer
from pipeline.ocr.tesseract import TesseractEngine, parse_tsv
from pipeline.settings import ExplicitSettings
from tests.pipeline.ocr.conftest import load_scan, truth

TSV = (
    "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n"
    "1\t1\t0\t0\t0\t0\t0\t0\t640\t480\t-1\t\n"
    "4\t1\t1\t1\t1\t0\t36\t92\t582\t32\t-1\t\n"
    "5\t1\t1\t1\t1\t1\t36\t92\t60\t24\t96.5\tThis\n"
    "5\t1\t1\t1\t1\t2\t108\t92\t20\t24\t91.0\tis\n"
    "5\t1\t1\t1\t2\t1\t36\t130\t80\t30\t50.0\tNext\n"
    "5\t1\t1\t1\t2\t2\t130\t130\t10\t30\t-1\t \n"
)


def test_tsv_words_become_lines_with_boxes_and_unit_confidence() -> None:
    first, second = parse_tsv(TSV)
    assert first.text == "This is"
    assert first.confidence == pytest.approx(0.9375)
    assert first.box == ((36.0, 92.0), (128.0, 92.0), (128.0, 116.0), (36.0, 116.0))
    assert second.text == "Next" and second.confidence == pytest.approx(0.5)
    # Tesseract places each word itself: kept as the line's words.
    assert [(w.text, w.box, w.confidence) for w in first.words] == [
        ("This", (36.0, 92.0, 96.0, 116.0), pytest.approx(0.965)),
        ("is", (108.0, 92.0, 128.0, 116.0), pytest.approx(0.91)),
    ]


@pytest.mark.parametrize(
    ("scan", "languages", "max_cer"),
    [
        ("tt_phototest_rotL.png", ("en",), 0.02),
        ("unlv_8087_054.tif", ("en",), 0.06),
        ("om_francais.pdf", ("french", "en"), 0.05),
    ],
)
def test_cer_on_real_scans(
    tesseract_settings: ExplicitSettings, scan: str, languages: tuple[str, ...], max_cer: float
) -> None:
    engine = get_engine(tesseract_settings, languages)
    (page,) = load_scan(scan)
    result = recognize_page(engine, page, min_confidence=0.3)
    assert cer(truth(scan)[0], result.text) <= max_cer
    assert all(0.0 <= line.confidence <= 1.0 for line in result.lines)


def test_language_names_map_to_traineddata() -> None:
    engine = TesseractEngine(languages=("dutch", "en", "fra"))
    assert engine.languages == ("nl", "en", "fr")


def test_missing_language_pack_says_which_package_to_install() -> None:
    with pytest.raises(EngineUnavailableError, match="tesseract-ocr-kor"):
        TesseractEngine(languages=("korean",))
