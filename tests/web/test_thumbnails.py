"""Page thumbnails: written when a page is OCR'd, served as PNG; 404 for what has none."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import Callable

import httpx
import pytest
from dramatiq import Worker
from PIL import Image, ImageStat

from pipeline.context import Context
from pipeline.documents import prepare_document, process_page
from pipeline.settings import Settings
from tests import pages
from tests.web.helpers import read_events

# Longest side of a thumbnail, pixels (the issue asks for about 200).
THUMBNAIL_SIDE = 200
# A thumbnail is "a few KB".
MAX_THUMBNAIL_BYTES = 20_000


def _thumbnail(api: httpx.Client, doc_id: str, page_no: int) -> Image.Image:
    response = api.get(f"/api/documents/{doc_id}/pages/{page_no}/thumbnail.png")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert len(response.content) <= MAX_THUMBNAIL_BYTES, len(response.content)
    image = Image.open(io.BytesIO(response.content))
    assert image.format == "PNG"
    return image.convert("L")


def _ink(image: Image.Image, box: tuple[int, int, int, int]) -> float:
    """Mean darkness (0 white .. 255 black) of ``box``."""
    return 255 - float(ImageStat.Stat(image.crop(box)).mean[0])


def _assert_404(api: httpx.Client, path: str, words: str = "") -> None:
    response = api.get(path)
    assert response.status_code == 404, response.text
    error = response.json()["error"]
    assert error["code"] == "not_found" and words in error["message"], error


def test_each_processed_page_has_a_thumbnail_of_its_shape(
    api: httpx.Client, start_worker: Callable[..., Worker]
) -> None:
    portrait = pages.text_page(pages.PARAGRAPH_A)
    landscape = pages.rotated(pages.text_page(pages.PARAGRAPH_B), 90)
    start_worker()
    data = pages.pdf_bytes([portrait, landscape])
    response = api.post("/api/documents", files={"file": ("two.pdf", data, "application/pdf")})
    assert response.status_code == 202, response.text
    doc_id = response.json()["id"]
    assert read_events(api, response.json()["links"]["events"])[-1][1]["status"] == "completed"

    first, second = _thumbnail(api, doc_id, 1), _thumbnail(api, doc_id, 2)
    for thumb, page in ((first, portrait), (second, landscape)):
        assert max(thumb.size) == THUMBNAIL_SIDE, thumb.size
        assert thumb.width / thumb.height == pytest.approx(page.width / page.height, rel=0.02)
    assert first.size[0] < first.size[1] and second.size[0] > second.size[1]
    # It shows the page: the portrait page's text sits in its top third, the rest is white paper.
    w, h = first.size
    assert _ink(first, (0, 0, w, h // 3)) > 5 * max(_ink(first, (0, h // 2, w, h)), 1.0)
    # The landscape page (turned 90 degrees counter-clockwise) has its text on the left.
    w, h = second.size
    assert _ink(second, (0, 0, w // 3, h)) > 5 * max(_ink(second, (w // 2, 0, w, h)), 1.0)

    _assert_404(api, f"/api/documents/{doc_id}/pages/3/thumbnail.png", "has 2 pages")
    for page_no in ("0", "01", "-1", "abc", "1.5", "9" * 30):
        _assert_404(api, f"/api/documents/{doc_id}/pages/{page_no}/thumbnail.png")


@pytest.mark.anyio
async def test_thumbnail_before_the_page_is_rendered_is_404_and_a_redelivery_rewrites_it(
    api: httpx.Client, pipeline_settings: Settings, ctx: Context
) -> None:
    data = pages.pdf_bytes([pages.text_page(pages.PARAGRAPH_A), pages.blank_page(255)])
    response = api.post("/api/documents", files={"file": ("two.pdf", data, "application/pdf")})
    doc_id = uuid.UUID(response.json()["id"])  # no worker runs: the document stays queued
    _assert_404(api, f"/api/documents/{doc_id}/pages/1/thumbnail.png", "not been split")

    # What tasks.ocr_document does before any page is OCR'd.
    assert (await prepare_document(ctx, doc_id)).to_ocr == [1, 2]
    _assert_404(api, f"/api/documents/{doc_id}/pages/1/thumbnail.png", "it is pending")

    # A redelivery while the first is still running.
    outcomes = await asyncio.gather(*(process_page(ctx, doc_id, 1) for _ in range(2)))
    stored = sorted(p.relative_to(pipeline_settings.storage_dir).as_posix()
                    for p in pipeline_settings.storage_dir.rglob("*.png"))  # fmt: skip
    assert sorted(o is not None and o.counted for o in outcomes) == [False, True]  # counted once
    assert stored == [f"documents/{doc_id}/thumbnails/1.png"]
    assert max(_thumbnail(api, str(doc_id), 1).size) == THUMBNAIL_SIDE
    _assert_404(api, f"/api/documents/{doc_id}/pages/2/thumbnail.png", "it is pending")


@pytest.mark.parametrize("doc_id", [str(uuid.uuid4()), "not-a-uuid", "1%20OR%201=1"])
def test_thumbnail_of_an_unknown_or_malformed_document_is_404(api: httpx.Client, doc_id: str) -> None:
    _assert_404(api, f"/api/documents/{doc_id}/pages/1/thumbnail.png")


def test_thumbnail_route_is_in_the_openapi_document(api: httpx.Client) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    operation = paths["/api/documents/{document_id}/pages/{page_no}/thumbnail.png"]["get"]
    assert "image/png" in operation["responses"]["200"]["content"]
    assert {p["name"] for p in operation["parameters"]} == {"document_id", "page_no"}
