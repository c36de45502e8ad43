"""The full path over HTTP: upload, follow Server-Sent Events with a streaming client, read text."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from dramatiq import Worker

from tests import born_digital, pages
from tests.web.helpers import read_events

# Character error rate allowed per synthetic page (clean 150-dpi text).
MAX_PAGE_CER = 0.05


def test_upload_events_then_text(api: httpx.Client, start_worker: Callable[..., Worker]) -> None:
    expected = ["\n".join(pages.PARAGRAPH_A), "\n".join(pages.PARAGRAPH_B)]
    data = pages.pdf_bytes([pages.text_page(pages.PARAGRAPH_A), pages.text_page(pages.PARAGRAPH_B)])
    start_worker()
    response = api.post("/api/documents", files={"file": ("two.pdf", data, "application/pdf")})
    assert response.status_code == 202, response.text
    links = response.json()["links"]

    events = read_events(api, links["events"])
    names = [name for name, _ in events]
    assert names == ["page", "page", "end"], events
    assert sorted(data["page_no"] for name, data in events if name == "page") == [1, 2]
    assert all(
        data["status"] == "done" and data["page_count"] == 2 for name, data in events if name == "page"
    )
    end = events[-1][1]
    assert end["status"] == "completed" and end["pages_finished"] == 2, end

    text = api.get(links["text"])
    assert text.status_code == 200 and text.headers["content-type"].startswith("text/plain")
    got = text.text.split("\f")
    assert len(got) == 2
    for n, (hyp, ref) in enumerate(zip(got, expected, strict=True), 1):
        assert pages.cer(hyp, ref) <= MAX_PAGE_CER, f"page {n}: {hyp!r}"

    result = api.get(links["result"]).json()
    assert result["status"] == "completed" and [p["page_no"] for p in result["pages"]] == [1, 2]
    doc = api.get(links["self"]).json()
    assert doc["result"]["document_id"] == doc["id"] and doc["page_counts"]["done"] == 2
    status = api.get(links["status"]).json()
    assert status["status"] == "completed" and status["progress_percentage"] == 100.0
    progress = api.get(links["progress"]).json()
    scanned = {"source": "ocr", "source_reason": "no text layer: the page is a scanned image"}
    assert progress["chunk_details"] == {
        "1": {"status": "completed", "error": None, **scanned},
        "2": {"status": "completed", "error": None, **scanned},
    }
    assert progress["real_time_progress"]["completed_chunks"] == 2
    assert "pagemill_page_duration_seconds_gcount 2.0" in api.get("/metrics").text

    # Finished: cancel is refused, only_failed finds nothing, a full reprocess runs again.
    assert api.post(links["cancel"]).status_code == 409
    assert api.post(links["reprocess"], params={"only_failed": "true"}).status_code == 409
    response = api.post(links["reprocess"])
    assert response.status_code == 202 and response.json()["pages_reset"] == [1, 2]
    events = read_events(api, links["events"])
    assert [name for name, _ in events] == ["page", "page", "end"], events
    assert events[-1][1]["status"] == "completed"
    assert api.get(links["text"]).text.split("\f") == got


def test_born_digital_pages_say_they_were_read_from_the_text_layer(
    api: httpx.Client, start_worker: Callable[..., Worker]
) -> None:
    digital = born_digital.sample_pages()[:2]
    start_worker()
    response = api.post("/api/documents", files={"file": ("report.pdf", born_digital.pdf_bytes(digital))})
    assert response.status_code == 202, response.text
    links = response.json()["links"]
    events = read_events(api, links["events"])
    assert [(name, data.get("source")) for name, data in events] == [
        ("page", "text_layer"),
        ("page", "text_layer"),
        ("end", None),
    ]
    progress = api.get(links["progress"]).json()
    assert {c["source"] for c in progress["chunk_details"].values()} == {"text_layer"}
    assert progress["metadata"]["engine"] == "text_layer"
    assert api.get(links["text"]).text.split("\f")[0] == "\n".join(digital[0].lines)


def test_events_of_a_cancelled_document_end_at_once(api: httpx.Client) -> None:
    data = pages.pdf_bytes([pages.blank_page(255)])
    links = api.post("/api/documents", files={"file": ("a.pdf", data)}).json()["links"]
    assert api.post(links["cancel"]).status_code == 200
    events = read_events(api, links["events"])
    assert events == [("end", {
        "document_id": links["self"].rsplit("/", 1)[-1], "status": "cancelled", "error": "cancelled by request",
        "page_count": None, "pages_finished": 0, "links": links,
    })]  # fmt: skip
