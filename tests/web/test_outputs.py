"""The searchable PDF, hOCR, ALTO and Markdown asked for at upload, made at aggregation, served once the document is done."""

from __future__ import annotations

import io
import subprocess
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import httpx
import pikepdf
from dramatiq import Worker
from pypdf import PdfReader, PdfWriter

from tests import born_digital
from tests import pages as test_pages
from tests.web.helpers import read_events

ALTO_NS = "{http://www.loc.gov/standards/alto/ns-v4#}"


def test_outputs_asked_for_are_made_and_linked(api: httpx.Client, start_worker: Callable[..., Worker]) -> None:
    pages = born_digital.sample_pages()[:2]
    response = api.post(
        "/api/documents",
        data={"outputs": "hocr,md,alto"},
        files={"file": ("letter.pdf", born_digital.pdf_bytes(pages), "application/pdf")},
    )
    assert response.status_code == 202, response.text
    links = response.json()["links"]
    assert {links["hocr"], links["alto"], links["md"]} == {
        f"{links['self']}/result.hocr",
        f"{links['self']}/result.alto.xml",
        f"{links['self']}/result.md",
    }
    early = api.get(links["md"])  # no worker yet: the document is not done
    assert early.status_code == 409, early.text

    start_worker()
    assert read_events(api, links["events"])[-1][1]["status"] == "completed"
    assert api.get(links["self"]).json()["links"]["md"] == links["md"]

    hocr = api.get(links["hocr"])
    assert hocr.status_code == 200 and hocr.headers["content-type"].startswith("text/html")
    root = ET.fromstring(hocr.content)
    words = [el.text for el in root.iter() if el.get("class") == "ocrx_word"]
    expected = " ".join(" ".join(p.lines) for p in pages)
    assert " ".join(w for w in words if w) == unicodedata.normalize("NFKC", expected)  # ligatures spelt out
    assert len([el for el in root.iter() if el.get("class") == "ocr_page"]) == 2

    alto = api.get(links["alto"])
    assert alto.status_code == 200 and alto.headers["content-type"].startswith("application/xml")
    strings = ET.fromstring(alto.content).iter(f"{ALTO_NS}String")
    assert [s.get("CONTENT") for s in strings][:5] == " ".join(pages[0].lines).split()[:5]

    markdown = api.get(links["md"])
    assert markdown.status_code == 200 and markdown.headers["content-type"].startswith("text/markdown")
    assert "Dear customer," in markdown.text and "Hauptstraße" in markdown.text


def test_an_output_not_asked_for_is_404_and_a_bad_one_is_400(
    api: httpx.Client, start_worker: Callable[..., Worker]
) -> None:
    pdf = born_digital.pdf_bytes(born_digital.sample_pages()[:1])
    bad = api.post("/api/documents", data={"outputs": "hocr,docx"}, files={"file": ("a.pdf", pdf)})
    assert bad.status_code == 400 and "docx" in bad.json()["error"]["message"]
    links = api.post("/api/documents", files={"file": ("a.pdf", pdf)}).json()["links"]
    assert "hocr" not in links
    start_worker()
    assert read_events(api, links["events"])[-1][1]["status"] == "completed"
    missing = api.get(f"{links['self']}/result.hocr")
    assert missing.status_code == 404 and "outputs=hocr" in missing.json()["error"]["message"]


def test_searchable_pdf_keeps_text_pages_and_adds_text_to_scans(
    api: httpx.Client, start_worker: Callable[..., Worker], tmp_path: Path
) -> None:
    # One born-digital page and one scan in the same PDF, and a PNG scan on its own.
    letter = born_digital.sample_pages()[:1]
    writer = PdfWriter()
    writer.append(PdfReader(io.BytesIO(born_digital.pdf_bytes(letter))))
    writer.append(PdfReader(io.BytesIO(test_pages.pdf_bytes([test_pages.text_page(test_pages.PARAGRAPH_B)]))))
    mixed = io.BytesIO()
    writer.write(mixed)
    png = io.BytesIO()
    test_pages.text_page(test_pages.PARAGRAPH_A).save(png, format="PNG")
    links = {}
    for name, data in (("mixed.pdf", mixed.getvalue()), ("scan.png", png.getvalue())):
        response = api.post("/api/documents", data={"outputs": "pdf"}, files={"file": (name, data)})
        assert response.status_code == 202, response.text
        links[name] = response.json()["links"]
        assert links[name]["pdf"] == f"{links[name]['self']}/result.pdf"
        assert api.get(links[name]["pdf"]).status_code == 409  # no worker yet
    start_worker()
    for name in links:
        assert read_events(api, links[name]["events"])[-1][1]["status"] == "completed"
        response = api.get(links[name]["pdf"])
        assert response.status_code == 200 and response.headers["content-type"] == "application/pdf"
        (tmp_path / name).with_suffix(".out.pdf").write_bytes(response.content)

    out = tmp_path / "mixed.out.pdf"
    first, second = (_pdftotext(out, n) for n in (1, 2))
    # The born-digital page keeps its own text, once (no OCR layer on it); the scan gained one.
    assert first.split() == unicodedata.normalize("NFKC", " ".join(letter[0].lines)).split()
    assert test_pages.cer(second, "\n".join(test_pages.PARAGRAPH_B)) < 0.05
    with pikepdf.open(out) as made:
        ocr_layers = [[n for n in p.resources.get("/XObject", {}) if "PagemillOCR" in n] for p in made.pages]
    assert [len(names) for names in ocr_layers] == [0, 1]
    report = api.get(f"{links['mixed.pdf']['self']}/result.json").json()["outputs"]["pdf"]
    assert report["pages_with_ocr_layer"] == [2] and report["pages_without_ocr_layer"] == []

    scan = _pdftotext(tmp_path / "scan.out.pdf", 1)
    assert test_pages.cer(scan, "\n".join(test_pages.PARAGRAPH_A)) < 0.05


def _pdftotext(path: Path, page_no: int) -> str:
    return subprocess.run(
        ["pdftotext", "-raw", "-f", str(page_no), "-l", str(page_no), str(path), "-"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
