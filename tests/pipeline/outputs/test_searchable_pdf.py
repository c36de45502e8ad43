"""The searchable PDF of real scans, made as the workers make it, checked with poppler and qpdf.

Each scan goes the page workers' way (render, OCR, layer per page) and is then grafted as
aggregation grafts it; what a user sees is checked with the tools they use: ``pdftotext`` (text
and word boxes), ``pdftoppm``-like rendering (pdfium, 72 dpi), ``qpdf --check``.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pikepdf
import pypdfium2 as pdfium
import pytest
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas

from pipeline import pdf
from pipeline.aggregate import page_to_json
from pipeline.ocr import OcrEngine, get_engine
from pipeline.ocr.orientation import upright_transform
from pipeline.ocr.page import recognize_page
from pipeline.ocr.scoring import bag_of_words_f1, cer
from pipeline.outputs.pdflayer import layer_pdf
from pipeline.outputs.searchable import make_searchable_pdf, strip_invisible_text
from pipeline.settings import ExplicitSettings
from tests.pipeline.ocr.conftest import DPI, RESOURCES, THREADS, truth

# Scans that hold one page each; the multi-column magazine page, a table page, a French PDF.
SCANS = ("tt_phototest.tif", "unlv_8087_054.tif", "pm_de_fr_table.png", "om_francais.pdf")
# What the layers may add to the file: the font once, and a few kB of text per page.
FONT_BYTES = 8_000
PAGE_BYTES = 12_000


@dataclass
class Made:
    source: Path  # what the tool was given (a PDF, or the image)
    plain: Path  # the source as a PDF (the image as img2pdf makes it), to compare the output with
    output: Path
    pages: list[dict[str, Any]]  # result.json page entries
    image_sizes: list[tuple[int, int]]


def make(engine: OcrEngine, source: Path, work: Path, *, name: str | None = None) -> Made:
    """Make the searchable PDF of ``source`` the way the workers and aggregation do."""
    is_pdf = source.suffix == ".pdf"
    count = pdf.inspect_document(source, max_pages=50, max_page_pixels=60_000_000, dpi=DPI).page_count
    pages, sizes, layers = [], [], {}
    for page_no in range(1, count + 1):
        image = pdf.render_page(source, page_no, dpi=DPI, max_page_pixels=60_000_000)
        page = page_to_json(recognize_page(engine, image, min_confidence=0.5))
        size = (image.shape[1], image.shape[0])
        layers[page_no] = layer_pdf(page, image_size=size)
        pages.append(page)
        sizes.append(size)
    output = work / f"{name or source.stem}.searchable.pdf"
    make_searchable_pdf(source, is_pdf=is_pdf, layers=layers, missing={}, strip_old=set(), target=output)
    plain = source
    if not is_pdf:
        plain = work / f"{source.stem}.plain.pdf"
        make_searchable_pdf(source, is_pdf=False, layers={}, missing={}, strip_old=set(), target=plain)
    return Made(source, plain, output, pages, sizes)


@pytest.fixture(scope="module")
def onnx_engine() -> OcrEngine:
    return get_engine(ExplicitSettings(ocr_engine="onnx", ocr_threads=THREADS), ("en", "fr", "german"))


@pytest.fixture(scope="module")
def made(onnx_engine: OcrEngine, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Made]:
    work = tmp_path_factory.mktemp("searchable")
    return {name: make(onnx_engine, RESOURCES / name, work) for name in SCANS}


def pdftotext(path: Path, *args: str) -> str:
    return subprocess.run(
        ["pdftotext", "-enc", "UTF-8", *args, str(path), "-"], capture_output=True, text=True, check=True
    ).stdout


def own_text(made: Made) -> str:
    return "\n".join(line["text"] for page in made.pages for line in page["lines"])


def render(path: Path, dpi: int = 72) -> list[np.ndarray]:
    document = pdfium.PdfDocument(str(path))
    try:
        return [
            np.asarray(page.render(scale=dpi / 72).to_pil().convert("L"), dtype=np.int16) for page in document
        ]
    finally:
        document.close()


def test_pdftotext_reads_what_pagemill_read(made: dict[str, Made]) -> None:
    # Pooled over the scans, the text a user gets from the PDF scores within half a point of
    # pagemill's own text (result.txt) against the ground truth. ``-raw`` keeps the order the
    # layer was written in (pagemill's reading order); poppler's default mode orders columns its
    # own way, so there only the words are compared.
    chars = sum(len(truth(name)[0]) for name in SCANS)
    own = sum(cer(truth(name)[0], own_text(made[name])) * len(truth(name)[0]) for name in SCANS) / chars
    extracted = sum(
        cer(truth(name)[0], pdftotext(made[name].output, "-raw")) * len(truth(name)[0]) for name in SCANS
    )
    assert extracted / chars <= own + 0.005, (extracted / chars, own)
    for name in SCANS:  # (that mode also joins words hyphenated at line ends: so do both here)
        reference = _joined(truth(name)[0])
        words = bag_of_words_f1(reference, _joined(pdftotext(made[name].output)))
        assert words >= bag_of_words_f1(reference, _joined(own_text(made[name]))) - 0.02, name


def _joined(text: str) -> str:
    return re.sub(r"(\w)-\s*\n\s*(\w)", r"\1\2", text)


_WORD = re.compile(r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>')


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _engine_boxes_in_points(
    page: dict[str, Any], image_size: tuple[int, int], page_size_pt: tuple[float, float]
) -> list[tuple[float, ...]]:
    """The engine's word boxes, taken back from the upright frame onto the page, in points (y down)."""
    back = np.linalg.inv(upright_transform(*image_size, page["rotation"], page["skew"]))
    sx, sy = page_size_pt[0] / image_size[0], page_size_pt[1] / image_size[1]
    boxes = []
    for line in page["lines"]:
        for word in line.get("words", []):
            x0, y0, x1, y1 = word["box"]
            corners = back @ np.array([[x0, x1, x1, x0], [y0, y0, y1, y1], [1, 1, 1, 1]], dtype=np.float64)
            boxes.append(
                (corners[0].min() * sx, corners[1].min() * sy, corners[0].max() * sx, corners[1].max() * sy)
            )
    return boxes


def test_words_pdftotext_finds_lie_on_the_printed_words(made: dict[str, Made]) -> None:
    for name in SCANS:
        one = made[name]
        html = pdftotext(one.output, "-bbox")
        width, height = (
            float(v) for v in re.search(r'<page width="([\d.]+)" height="([\d.]+)"', html).groups()
        )
        engine = _engine_boxes_in_points(one.pages[0], one.image_sizes[0], (width, height))
        found = [tuple(float(v) for v in m[:4]) for m in _WORD.findall(html)]
        assert len(found) >= 0.9 * len(engine), name
        on_word = sum(1 for box in found if max(_iou(box, e) for e in engine) >= 0.5)
        assert on_word >= 0.9 * len(found), (name, on_word, len(found))


def test_pages_look_exactly_as_before(made: dict[str, Made]) -> None:
    for name in SCANS:
        before, after = render(made[name].plain), render(made[name].output)
        assert len(before) == len(after)
        for a, b in zip(before, after, strict=True):
            assert a.shape == b.shape
            assert int(np.abs(a - b).max()) == 0, name


def test_the_file_grows_by_a_small_allowance_per_page_and_qpdf_finds_it_clean(made: dict[str, Made]) -> None:
    for name in SCANS:
        one = made[name]
        pages = len(one.pages)
        assert one.output.stat().st_size <= one.plain.stat().st_size + FONT_BYTES + PAGE_BYTES * pages, name
        check = subprocess.run(
            ["qpdf", "--check", str(one.output)], check=False, capture_output=True, text=True
        )
        assert check.returncode == 0, check.stdout + check.stderr
        assert "No syntax or stream encoding errors" in check.stdout
        # The page images are the source's own objects, byte for byte.
        with pikepdf.open(one.plain) as a, pikepdf.open(one.output) as b:
            raw_a = sorted(im.read_raw_bytes() for p in a.pages for im in p.get_images().values())
            raw_b = sorted(im.read_raw_bytes() for p in b.pages for im in p.get_images().values())
            assert raw_a == raw_b, name


def test_a_rotated_page_has_its_text_upright(onnx_engine: OcrEngine, tmp_path: Path) -> None:
    # The French page stored sideways (/Rotate 90, cropped): the reader sees it upright, and so
    # does pdftotext; its words are where the reader sees them.
    turned = tmp_path / "turned.pdf"
    with pikepdf.open(RESOURCES / "om_francais.pdf") as src:
        page = src.pages[0]
        x0, y0, x1, y1 = (float(v) for v in page.mediabox)
        page.obj.CropBox = [x0 + 20, y0 + 30, x1 - 10, y1]
        page.obj.Rotate = 90
        src.save(turned)
    one = make(onnx_engine, turned, tmp_path)
    reference = truth("om_francais.pdf")[0]
    assert cer(reference, pdftotext(one.output, "-raw")) <= cer(reference, own_text(one)) + 0.005
    text = pdftotext(one.output)
    assert "Portez ce vieux whisky au juge" in text
    assert bag_of_words_f1(reference, text) >= bag_of_words_f1(reference, own_text(one)) - 0.01
    assert int(np.abs(render(turned)[0] - render(one.output)[0]).max()) == 0
    # A scan that was itself turned (the page shows it sideways): its text is where it is printed,
    # in reading order.
    sideways = make(onnx_engine, RESOURCES / "tt_phototest_rotL.png", tmp_path)
    raw = pdftotext(sideways.output, "-raw")
    assert (
        cer(truth("tt_phototest_rotL.png")[0], raw)
        <= cer(truth("tt_phototest_rotL.png")[0], own_text(sideways)) + 0.005
    )
    assert int(np.abs(render(sideways.plain)[0] - render(sideways.output)[0]).max()) == 0


def _pdf_with_old_ocr_layer(path: Path) -> None:
    """A page with visible text, an invisible (render mode 3) old OCR layer, and one in a form."""
    c = canvas.Canvas(str(path), pagesize=A4)
    c.setFont("Helvetica", 14)
    c.drawString(72, 760, "Visible heading stays")
    t = c.beginText(72, 700)
    t.setTextRenderMode(3)
    t.setFont("Helvetica", 14)
    t.textLine("hidden stale ocrwords")
    c.drawText(t)
    c.beginForm("oldlayer")
    f = c.beginText(72, 600)
    f.setTextRenderMode(3)
    f.setFont("Helvetica", 14)
    f.textLine("formhidden staleform")
    c.drawText(f)
    c.endForm()
    c.doForm("oldlayer")
    c.showPage()
    c.save()


def test_an_old_invisible_ocr_layer_is_removed_and_visible_text_kept(tmp_path: Path) -> None:
    source = tmp_path / "old.pdf"
    _pdf_with_old_ocr_layer(source)
    assert "ocrwords" in pdftotext(source) and "staleform" in pdftotext(source)
    out = tmp_path / "out.pdf"
    report = make_searchable_pdf(source, is_pdf=True, layers={1: layer_pdf({"lines": []}, image_size=(100, 100))},
                                 missing={}, strip_old={1}, target=out)  # fmt: skip
    text = pdftotext(out)
    assert "Visible heading stays" in text
    assert "ocrwords" not in text and "staleform" not in text
    assert report.stripped == [1]
    assert int(np.abs(render(source)[0] - render(out)[0]).max()) == 0
    # Nothing invisible on a page: nothing is removed.
    with pikepdf.open(out) as again:
        assert strip_invisible_text(again, again.pages[0]) is False


def test_images_with_transparency_become_lossless_pages(onnx_engine: OcrEngine, tmp_path: Path) -> None:
    from PIL import Image

    with Image.open(RESOURCES / "tt_phototest.tif") as image:
        rgba = image.convert("RGBA")
    rgba.putalpha(255)
    source = tmp_path / "alpha.png"
    rgba.save(source)
    one = make(onnx_engine, source, tmp_path)
    assert "quick brown dog" in pdftotext(one.output)
    with pikepdf.open(one.output) as out:
        (image,) = out.pages[0].get_images().values()
        pixels = np.asarray(pikepdf.PdfImage(image).as_pil_image().convert("RGB"))
    assert np.array_equal(pixels, np.asarray(rgba.convert("RGB")))
