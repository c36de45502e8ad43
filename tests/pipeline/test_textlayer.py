"""Which PDF pages hold real text, and that reading it gives every character, in order where it can.

Real PDFs (tests/resources/pdf, see its MANIFEST) carry each page's kind and ground truth from
pdftotext. Their reading order is poppler's, so content is judged order-free there (character
and word multisets); the PDFs made here are judged line for line.
"""

from __future__ import annotations

import collections
import json
import re
import unicodedata
from pathlib import Path

import pytest

from pipeline import textlayer
from pipeline.ocr.base import Line, PageResult
from pipeline.textlayer import LayerKind, OcrMode, TextSource
from tests import born_digital

PDFS = Path(__file__).resolve().parents[1] / "resources" / "pdf"
FIXTURES = sorted(p.stem for p in PDFS.glob("*.pdf"))
DPI = 200


def _normal(text: str) -> str:
    # NFKC also spells ligatures out (ﬁ -> fi), as the ground truth does.
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip()


def _expected(stem: str) -> list[LayerKind]:
    return [LayerKind(p["kind"]) for p in json.loads((PDFS / f"{stem}.expect.json").read_text())]


def _truth(stem: str) -> list[str]:
    return (PDFS / f"{stem}.gt.txt").read_text(encoding="utf-8").split("\f")


def _recall(hyp: str, ref: str) -> float:
    """Share of the reference's characters (spaces aside) found in the hypothesis, in any order."""
    h, r = collections.Counter(hyp.replace(" ", "")), collections.Counter(ref.replace(" ", ""))
    return sum((h & r).values()) / max(1, sum(r.values()))


def _bow_f1(hyp: str, ref: str) -> float:
    h, r = collections.Counter(hyp.split()), collections.Counter(ref.split())
    return 2 * sum((h & r).values()) / max(1, sum(h.values()) + sum(r.values()))


@pytest.mark.parametrize("stem", FIXTURES)
def test_real_pdfs_pages_get_their_kind_and_source(stem: str) -> None:
    layers = textlayer.analyze_pdf(PDFS / f"{stem}.pdf", dpi=DPI)
    assert [layer.kind for layer in layers] == _expected(stem)
    for layer in layers:
        plan = textlayer.plan_page(layer, OcrMode.AUTO)
        assert plan.source is (
            TextSource.TEXT_LAYER if layer.kind is LayerKind.TEXT_LAYER else TextSource.OCR
        )
        assert plan.reason  # said in the page's result and progress


@pytest.mark.parametrize("stem", [s for s in FIXTURES if LayerKind.TEXT_LAYER in _expected(s)])
def test_text_layer_pages_give_every_character(stem: str) -> None:
    layers = textlayer.analyze_pdf(PDFS / f"{stem}.pdf", dpi=DPI)
    for layer, truth in zip(layers, _truth(stem), strict=True):
        if layer.kind is not LayerKind.TEXT_LAYER:
            continue
        got, ref = _normal(textlayer.layer_result(layer).text), _normal(truth)
        # Measured: recall 0.9996-1.0 and BoW-F1 0.974-1.0 per page (tracemonkey p6 lowest:
        # hyphenated words poppler joins and pdfium keeps).
        assert _recall(got, ref) >= 0.999, f"page {layer.page_no}"
        assert _bow_f1(got, ref) >= 0.97, f"page {layer.page_no}"
        assert all(line.box and line.confidence == 1.0 for line in layer.lines)
        xs = [x for line in layer.lines for x, _ in line.box]
        ys = [y for line in layer.lines for _, y in line.box]
        assert 0 <= min(xs) and max(xs) <= layer.width and 0 <= min(ys) and max(ys) <= layer.height


def test_filled_form_fields_are_read() -> None:
    # The values live only in the widgets' appearance streams: pdfium shows them once flattened.
    (layer,) = textlayer.analyze_pdf(PDFS / "bd_form_filled.pdf", dpi=DPI)
    text = textlayer.layer_result(layer).text
    assert "Lucía" in text and "Garzas" in text


def test_garbage_layers_are_not_used() -> None:
    for stem in ("gl_cmyk", "gl_czech_cmap"):
        (layer,) = textlayer.analyze_pdf(PDFS / f"{stem}.pdf", dpi=DPI)
        plan = textlayer.plan_page(layer, OcrMode.AUTO)
        assert plan.source is TextSource.OCR and "garbage" in plan.reason
        assert not plan.keep_text


@pytest.mark.parametrize(
    ("mode", "source", "keep"),
    [
        (OcrMode.AUTO, TextSource.OCR, False),
        (OcrMode.FORCE, TextSource.OCR, False),
        (OcrMode.REDO, TextSource.OCR, False),  # the page's only text is the OCR layer: nothing real to keep
    ],
)
def test_invisible_ocr_layer_is_replaced(mode: OcrMode, source: TextSource, keep: bool) -> None:
    (layer,) = textlayer.analyze_pdf(PDFS / "ocr_ricoh_lorem.pdf", dpi=DPI)
    assert layer.kind is LayerKind.OCR_LAYER
    assert "3-Heights" in layer.reason  # the producer is named: operators see which tool made it
    plan = textlayer.plan_page(layer, mode)
    assert (plan.source, plan.keep_text) == (source, keep)


@pytest.mark.parametrize("mode", list(OcrMode))
def test_text_layer_pages_follow_ocr_mode(mode: OcrMode) -> None:
    layers = textlayer.analyze_pdf(PDFS / "mixed_fr.pdf", dpi=DPI)
    sources = [textlayer.plan_page(layer, mode).source for layer in layers]
    if mode is OcrMode.FORCE:
        assert sources == [TextSource.OCR, TextSource.OCR]
    else:
        assert sources == [TextSource.TEXT_LAYER, TextSource.OCR]


def test_images_are_always_ocred() -> None:
    assert textlayer.plan_page(None, OcrMode.AUTO).source is TextSource.OCR


def test_made_pdfs_read_line_for_line(tmp_path: Path) -> None:
    pages = born_digital.sample_pages()
    path = tmp_path / "made.pdf"
    path.write_bytes(born_digital.pdf_bytes(pages))
    layers = textlayer.analyze_pdf(path, dpi=DPI, thumbnails=True)
    assert [layer.kind for layer in layers] == [LayerKind.TEXT_LAYER] * len(pages)
    for layer, page in zip(layers, pages, strict=True):
        got = [line.text for line in textlayer.layer_result(layer).lines]
        # Leading spaces (the code listing's indent) are not kept; ligatures are spelt out.
        assert got == [unicodedata.normalize("NFKC", line).strip() for line in page.lines], layer.page_no
        assert layer.thumbnail is not None and layer.thumbnail.startswith(b"\x89PNG")
    # The /Rotate 90 page is displayed portrait: its lines' boxes lie in the displayed frame.
    turned = layers[-1]
    assert (turned.width, turned.height) == (layers[0].width, layers[0].height)
    # Same lines at the same place as on page 1 (another font: loose boxes differ by a few px).
    for mine, upright in zip(turned.lines, layers[0].lines, strict=True):
        assert mine.box[0] == pytest.approx(upright.box[0], abs=8)


def test_page_numbers_limit_the_work(tmp_path: Path) -> None:
    path = tmp_path / "made.pdf"
    path.write_bytes(born_digital.pdf_bytes(born_digital.sample_pages()))
    (layer,) = textlayer.analyze_pdf(path, dpi=DPI, page_numbers=[3])
    assert layer.page_no == 3 and layer.lines[0].text == born_digital.LEFT[0]


def test_redo_keeps_real_text_and_adds_ocr_lines_elsewhere() -> None:
    def line(text: str, x0: float, y0: float, x1: float, y1: float, conf: float = 1.0) -> Line:
        return Line(text=text, confidence=conf, box=((x0, y0), (x1, y0), (x1, y1), (x0, y1)))

    real = line("Invoice 2026-117", 100, 100, 600, 140)
    layer = textlayer.PageLayer(1, LayerKind.OCR_LAYER, "invisible", 1000, 1400, lines=(real,))
    ocr = PageResult(
        lines=(
            line("lnvoice 2026-l17", 102, 98, 598, 142, 0.8),
            line("Total due: 40 EUR", 100, 300, 500, 340, 0.9),
        ),
        width=1000,
        height=1400,
    )
    merged = textlayer.merge_real_text(ocr, layer)
    assert [m.text for m in merged.lines] == ["Invoice 2026-117", "Total due: 40 EUR"]
    # A page OCR had to turn is left as OCR read it: the real text's boxes are in another frame.
    turned = PageResult(lines=ocr.lines, width=1400, height=1000, rotation=90)
    assert textlayer.merge_real_text(turned, layer) is turned


def test_words_are_boxed_from_the_character_boxes_when_asked(tmp_path: Path) -> None:
    from reportlab.pdfbase.pdfmetrics import stringWidth

    page = born_digital.sample_pages()[0]  # Helvetica, from the left margin
    path = tmp_path / "letter.pdf"
    path.write_bytes(born_digital.pdf_bytes([page]))
    (plain,) = textlayer.analyze_pdf(path, dpi=DPI)
    assert all(line.words == () for line in plain.lines)  # not asked: no cost
    (layer,) = textlayer.analyze_pdf(path, dpi=DPI, words=True)
    scale = DPI / 72
    for line, text in zip(textlayer.layer_result(layer).lines, page.lines, strict=True):
        assert [w.text for w in line.words] == text.split()
        for word, match in zip(line.words, re.finditer(r"\S+", text), strict=True):
            left = born_digital.MARGIN + stringWidth(text[: match.start()], "Helvetica", born_digital.SIZE)
            right = left + stringWidth(match.group(), "Helvetica", born_digital.SIZE)
            assert word.box[0] == pytest.approx(left * scale, abs=2)
            assert word.box[2] == pytest.approx(right * scale, abs=2)
            assert line.box[0][1] - 0.5 <= word.box[1] < word.box[3] <= line.box[2][1] + 0.5


def test_line_end_hyphens_join_words_but_stay_before_capitals(tmp_path: Path) -> None:
    path = tmp_path / "hyphens.pdf"
    path.write_bytes(
        born_digital.pdf_bytes(
            [born_digital.single("Helvetica", ["The Franco-", "German treaty was docu-", "mented in 1963."])]
        )
    )
    (layer,) = textlayer.analyze_pdf(path, dpi=DPI)
    # pdfium moves a broken word's second half up to its first line, as pdftotext does.
    assert [line.text for line in textlayer.layer_result(layer).lines] == [
        "The Franco-German",
        "treaty was documented",
        "in 1963.",
    ]
