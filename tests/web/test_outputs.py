"""hOCR, ALTO and Markdown asked for at upload, made at aggregation, served once the document is done."""

from __future__ import annotations

import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Callable

import httpx
from dramatiq import Worker

from tests import born_digital
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
