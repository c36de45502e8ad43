"""hOCR and ALTO from a document result, read back with an XML parser.

The results are made as the workers make them: born-digital PDFs written here are read as
text-layer pages (with the PDF's word boxes, and without them so that words are placed by
character count), a real scan is read by the default OCR engine, and pages are aggregated into
``result.json``. Smaller results written out by hand cover what those cannot show: words given
with odd boxes, text that needs escaping, a failed page whose size is known.
"""

from __future__ import annotations

import math
import re
import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image as PILImage

from pipeline import aggregate, textlayer
from pipeline.jobs import Document, DocumentStatus, Page, PageStatus
from pipeline.ocr import get_engine, recognize_page
from pipeline.outputs.alto import to_alto
from pipeline.outputs.hocr import to_hocr
from pipeline.outputs.words import Word, line_words
from pipeline.settings import ExplicitSettings
from tests.born_digital import pdf_bytes, sample_pages

SCANS = Path(__file__).resolve().parents[2] / "resources" / "ocr"
DPI = 150
XHTML = "{http://www.w3.org/1999/xhtml}"
ALTO = "{http://www.loc.gov/standards/alto/ns-v4#}"
XSI_LOCATION = "{http://www.w3.org/2001/XMLSchema-instance}schemaLocation"
Box = tuple[int, int, int, int]


def _document(filename: str = "sample.pdf") -> Document:
    now = datetime.now(UTC)
    return Document(
        id=uuid.UUID(int=1), status=DocumentStatus.AGGREGATING, source_key="documents/x/source.pdf",
        filename=filename, kind="pdf", sha256=None, size_bytes=None, page_count=None, pages_finished=0,
        lang_hints=(), min_confidence=None, dpi=DPI, engine="onnx", error=None, options={},
        result_key=None, created_at=now, updated_at=now, finished_at=None,
    )  # fmt: skip


def _page(page_no: int, text: str | None, body: dict[str, Any] | None, status: PageStatus) -> Page:
    error = None if status is PageStatus.DONE else "the page could not be rendered"
    return Page(uuid.UUID(int=1), page_no, status, 1, text, 1.0 if text else None, body, error, 5)


def _pdf_result(tmp: Path, *, words: bool) -> dict[str, Any]:
    """The sample PDF read as text-layer pages, then one failed page, aggregated."""
    path = tmp / "sample.pdf"
    path.write_bytes(pdf_bytes(sample_pages()))
    pages = []
    for layer in textlayer.analyze_pdf(path, dpi=DPI, words=words):
        result = textlayer.layer_result(layer)
        pages.append(_page(layer.page_no, result.text, aggregate.page_to_json(result), PageStatus.DONE))
    pages.append(_page(len(pages) + 1, None, None, PageStatus.FAILED))
    return aggregate.aggregate_document(_document(), pages).data


@pytest.fixture(scope="module", params=[True, False], ids=["pdf_words", "split_words"])
def pdf_result(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _pdf_result(tmp_path_factory.mktemp("pdf"), words=request.param)


@pytest.fixture(scope="module")
def scan_result() -> dict[str, Any]:
    """Tesseract's phototest read by the default OCR engine (its lines carry CTC word boxes)."""
    engine = get_engine(ExplicitSettings(ocr_engine="onnx", ocr_threads=2), ("en",))
    with PILImage.open(SCANS / "tt_phototest.tif") as image:
        page = recognize_page(engine, np.asarray(image.convert("RGB")), min_confidence=0.5)
    assert all(line.words for line in page.lines)
    pages = [_page(1, page.text, aggregate.page_to_json(page), PageStatus.DONE)]
    return aggregate.aggregate_document(_document("tt_phototest.tif"), pages).data


def _hocr_props(element: ET.Element) -> dict[str, str]:
    return dict(p.strip().split(" ", 1) for p in element.attrib["title"].split(";"))


def _bbox(text: str) -> Box:
    x0, y0, x1, y1 = (int(v) for v in text.split())
    return x0, y0, x1, y1


def _alto_box(element: ET.Element) -> Box:
    x, y, w, h = (int(element.attrib[k]) for k in ("HPOS", "VPOS", "WIDTH", "HEIGHT"))
    return x, y, x + w, y + h


def _inside(inner: Box, outer: Box) -> bool:
    return outer[0] <= inner[0] <= inner[2] <= outer[2] and outer[1] <= inner[1] <= inner[3] <= outer[3]


def _check_hocr(result: dict[str, Any]) -> ET.Element:
    """Every structural promise of the hOCR: classes, one page each, words, boxes, confidences."""
    root = ET.fromstring(to_hocr(result))
    assert root.tag == f"{XHTML}html"
    metas = {m.attrib["name"]: m.attrib["content"] for m in root.iter(f"{XHTML}meta") if "name" in m.attrib}
    assert metas["ocr-system"] == "pagemill"
    assert set(metas["ocr-capabilities"].split()) >= {"ocr_page", "ocr_line", "ocrx_word"}
    pages = root.findall(f"{XHTML}body/{XHTML}div")
    assert [p.attrib["class"] for p in pages] == ["ocr_page"] * len(result["pages"])
    for element, page in zip(pages, result["pages"], strict=True):
        props = _hocr_props(element)
        assert element.attrib["id"] == f"page_{page['page_no']}"
        assert props["ppageno"] == str(page["page_no"] - 1)
        assert props["image"] == f'"{result["filename"]}"'
        page_box = (0, 0, page["width"], page["height"]) if page["width"] else None
        assert (_bbox(props["bbox"]) if "bbox" in props else None) == page_box
        lines = element.findall(f"{XHTML}span")
        assert {line.attrib["class"] for line in lines} <= {"ocr_line"}
        words = []
        for line in lines:
            line_box = _bbox(_hocr_props(line)["bbox"])
            assert page_box is None or _inside(line_box, page_box)
            for word in line.findall(f"{XHTML}span"):
                assert word.attrib["class"] == "ocrx_word"
                word_props = _hocr_props(word)
                assert _inside(_bbox(word_props["bbox"]), line_box)
                assert 0 <= int(word_props["x_wconf"]) <= 100
                words.append(word.text)
        assert words == page["text"].split()
    return root


def _check_alto(result: dict[str, Any]) -> ET.Element:
    """Every structural promise of the ALTO: namespace, pages, boxes nested, String attributes."""
    root = ET.fromstring(to_alto(result))
    assert root.tag == f"{ALTO}alto"
    assert root.attrib[XSI_LOCATION].split() == [
        "http://www.loc.gov/standards/alto/ns-v4#",
        "http://www.loc.gov/standards/alto/v4/alto-4-2.xsd",
    ]
    assert root.findtext(f"{ALTO}Description/{ALTO}MeasurementUnit") == "pixel"
    assert root.findtext(f".//{ALTO}sourceImageInformation/{ALTO}fileName") == result["filename"]
    assert root.findtext(f".//{ALTO}processingSoftware/{ALTO}softwareName") == "pagemill"
    pages = root.findall(f"{ALTO}Layout/{ALTO}Page")
    assert len(pages) == len(result["pages"])
    for element, page in zip(pages, result["pages"], strict=True):
        assert element.attrib["ID"] == f"page_{page['page_no']}"
        assert element.attrib["PHYSICAL_IMG_NR"] == str(page["page_no"])
        assert element.get("WIDTH") == (str(page["width"]) if page["width"] else None)
        assert element.get("HEIGHT") == (str(page["height"]) if page["height"] else None)
        page_box = (0, 0, page["width"], page["height"]) if page["width"] else (0, 0, 10**9, 10**9)
        contents = []
        for block in element.iterfind(f"{ALTO}PrintSpace/{ALTO}TextBlock"):
            block_box = _alto_box(block)
            assert _inside(block_box, page_box)
            for line in block.iterfind(f"{ALTO}TextLine"):
                line_box = _alto_box(line)
                assert _inside(line_box, block_box)
                children = list(line)
                # String, SP, String, ... SP, String
                assert [c.tag for c in children] == [f"{ALTO}String", f"{ALTO}SP"] * (len(children) // 2) + [
                    f"{ALTO}String"
                ]
                for string in line.iterfind(f"{ALTO}String"):
                    assert {"CONTENT", "HPOS", "VPOS", "WIDTH", "HEIGHT", "WC"} <= set(string.attrib)
                    assert _inside(_alto_box(string), line_box)
                    assert 0.0 <= float(string.attrib["WC"]) <= 1.0
                    contents.append(string.attrib["CONTENT"])
        assert contents == page["text"].split()
    return root


def test_hocr_of_a_born_digital_pdf(pdf_result: dict[str, Any]) -> None:
    root = _check_hocr(pdf_result)
    failed = root.findall(f"{XHTML}body/{XHTML}div")[-1]
    assert pdf_result["pages"][-1]["status"] == "failed"
    assert list(failed) == [] and "bbox" not in _hocr_props(failed)


def test_alto_of_a_born_digital_pdf(pdf_result: dict[str, Any]) -> None:
    root = _check_alto(pdf_result)
    pages = root.findall(f"{ALTO}Layout/{ALTO}Page")
    # page 3 has two columns: the right one starts back at the top, in a block of its own
    blocks = pages[2].findall(f"{ALTO}PrintSpace/{ALTO}TextBlock")
    assert [len(b) for b in blocks] == [3, 3]
    assert [len(p.findall(f"{ALTO}PrintSpace/{ALTO}TextBlock")) for p in pages[:2]] == [1, 1]
    assert list(pages[-1]) == []


def test_pdf_word_boxes_are_used_as_given(tmp_path: Path) -> None:
    result = _pdf_result(tmp_path, words=True)
    line = result["pages"][0]["lines"][1]  # "thank you for your order of 14 March."
    given = [(w["text"], *w["box"]) for w in line["words"]]
    placed = [(w.text, w.x0, w.y0, w.x1, w.y1) for w in line_words(line)]
    assert [p[0] for p in placed] == [g[0] for g in given]
    for (_, *got), (_, *box) in zip(placed, given, strict=True):
        assert got == [math.floor(box[0]), math.floor(box[1]), math.ceil(box[2]), math.ceil(box[3])]


def test_hocr_and_alto_of_an_ocr_scan(scan_result: dict[str, Any]) -> None:
    _check_hocr(scan_result)
    root = _check_alto(scan_result)
    strings = list(root.iter(f"{ALTO}String"))
    confidences = [w["confidence"] for line in scan_result["pages"][0]["lines"] for w in line["words"]]
    assert [float(s.attrib["WC"]) for s in strings] == pytest.approx(confidences, abs=1e-3)


def _line(text: str, box: Box, **extra: Any) -> dict[str, Any]:
    x0, y0, x1, y1 = box
    return {"text": text, "confidence": 0.9, "box": [[x0, y0], [x1, y0], [x1, y1], [x0, y1]], **extra}


def _result(pages: list[dict[str, Any]], filename: str = "scan.png") -> dict[str, Any]:
    return {"filename": filename, "pages": pages}


def _done(page_no: int, lines: list[dict[str, Any]], size: tuple[int, int] = (400, 300)) -> dict[str, Any]:
    text = "\n".join(line["text"] for line in lines)
    return {
        "page_no": page_no,
        "status": "done",
        "width": size[0],
        "height": size[1],
        "text": text,
        "lines": lines,
    }


def test_explicit_words_are_written_as_given_and_a_failed_page_keeps_its_size() -> None:
    words = [
        {"text": "Total:", "box": [10.4, 20.6, 60.2, 40.0], "confidence": 0.75},
        # a word box wider than the line's quad, and one past the page's right edge
        {"text": "1,250.00", "box": [70.0, 18.0, 170.5, 44.0], "confidence": 0.333},
        {"text": "EUR", "box": [380.0, 20.0, 420.0, 40.0], "confidence": 1.0},
    ]
    failed = {"page_no": 2, "status": "failed", "width": 400, "height": 300, "text": "", "lines": []}
    result = _result([_done(1, [_line("Total: 1,250.00 EUR", (10, 20, 160, 40), words=words)]), failed])
    hocr = _check_hocr(result)
    spans = list(hocr.iter(f"{XHTML}span"))
    assert [s.attrib["title"] for s in spans] == [
        "bbox 10 18 400 44",
        "bbox 10 20 61 40; x_wconf 75",
        "bbox 70 18 171 44; x_wconf 33",
        "bbox 380 20 400 40; x_wconf 100",
    ]
    failed_page = hocr.findall(f"{XHTML}body/{XHTML}div")[1]
    assert _hocr_props(failed_page)["bbox"] == "0 0 400 300" and list(failed_page) == []
    alto = _check_alto(result)
    strings = list(alto.iter(f"{ALTO}String"))
    assert [_alto_box(s) for s in strings] == [(10, 20, 61, 40), (70, 18, 171, 44), (380, 20, 400, 40)]
    assert [s.attrib["WC"] for s in strings] == ["0.75", "0.333", "1"]
    assert [(s.attrib["HPOS"], s.attrib["WIDTH"]) for s in alto.iter(f"{ALTO}SP")] == [
        ("61", "9"),
        ("171", "209"),
    ]


def test_words_without_boxes_share_the_line_by_character_count() -> None:
    # "ab c": 2 + 1 (space) + 1 characters over 40 px, so 10 px each
    assert line_words(_line("ab  c", (100, 5, 140, 15))) == [
        Word("ab", 100, 5, 120, 15, 0.9),
        Word("c", 130, 5, 140, 15, 0.9),
    ]
    # a line hanging off the page is cut at its edge
    assert [w.bbox for w in line_words(_line("x y", (-10, 290, 50, 320)), size=(40, 300))] == [
        (0, 290, 10, 300),
        (30, 290, 40, 300),
    ]
    assert line_words(_line("   ", (0, 0, 10, 10))) == []


def test_text_that_needs_escaping_comes_back_unchanged() -> None:
    text = "if a < b && c > \"d\" then 'e'; </span> ]]> &amp;"
    filename = 'report "Q1" <draft>; v2.pdf'
    page = _done(1, [_line(text + "\x0c\x00", (0, 0, 390, 20))])
    page["text"] = text
    result = _result([page], filename)
    hocr = ET.fromstring(to_hocr(result))
    assert [w.text for w in hocr.iter(f"{XHTML}span") if w.attrib["class"] == "ocrx_word"] == text.split()
    assert hocr.findtext(f"{XHTML}head/{XHTML}title") == filename
    page_div = hocr.find(f"{XHTML}body/{XHTML}div")
    assert page_div is not None
    assert re.fullmatch(r'"[^";]*"', _hocr_props(page_div)["image"])
    alto = _check_alto({**result, "filename": filename})
    assert [s.attrib["CONTENT"] for s in alto.iter(f"{ALTO}String")] == text.split()
    assert alto.findtext(f".//{ALTO}fileName") == filename
