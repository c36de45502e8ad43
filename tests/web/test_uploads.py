"""POST /api/documents: accepted uploads and every refusal, over real HTTP."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import httpx
import pytest

from actors.producer import Producer
from pipeline.context import Context
from pipeline.jobs import DocumentStatus
from pipeline.settings import Settings
from tests import pages
from tests.web.conftest import ServerThread
from tests.web.helpers import MULTIPART_TYPE, multipart, padded_pdf
from web.app import create_app


def _two_page_pdf() -> bytes:
    return pages.pdf_bytes([pages.text_page(pages.PARAGRAPH_A), pages.text_page(pages.PARAGRAPH_B)])


def _error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]
    return str(body["error"]["message"])


def _stored(settings: Settings, document_id: str) -> tuple[DocumentStatus, dict[str, object], bool]:
    async def read() -> tuple[DocumentStatus, dict[str, object], bool]:
        ctx = await Context.open(settings, migrate=False)
        try:
            doc = await ctx.store.get_document(uuid.UUID(document_id))
            fields = {
                "lang_hints": doc.lang_hints,
                "dpi": doc.dpi,
                "min_confidence": doc.min_confidence,
                "options": doc.options,
                "filename": doc.filename,
                "size_bytes": doc.size_bytes,
            }
            return doc.status, fields, await ctx.storage.exists(doc.source_key)
        finally:
            await ctx.aclose()

    return asyncio.run(read())


def test_upload_stores_the_file_and_answers_202_with_links(
    api: httpx.Client, pipeline_settings: Settings
) -> None:
    data = _two_page_pdf()
    response = api.post(
        "/api/documents",
        data={
            "lang_hints": "en,french",
            "dpi": "200",
            "min_confidence": "0.6",
            "postprocess": ["summary", "quiz"],
            "ocr_mode": "Force",
        },
        files={"file": ("C:\\scans\\two.pdf", data, "application/pdf")},
    )
    assert response.status_code == 202, response.text
    body = response.json()
    doc_id = body["id"]
    assert body["status"] == "queued" and body["document_id"] == doc_id and body["task_id"]
    assert set(body["links"]) == {
        "self",
        "status",
        "progress",
        "text",
        "result",
        "events",
        "cancel",
        "reprocess",
    }
    assert body["links"]["events"] == f"/api/documents/{doc_id}/events"
    assert response.headers["location"] == f"/api/documents/{doc_id}"
    status, fields, exists = _stored(pipeline_settings, doc_id)
    assert status is DocumentStatus.QUEUED and exists
    assert fields == {
        "lang_hints": ("en", "french"),
        "dpi": 200,
        "min_confidence": pytest.approx(0.6),
        "options": {"postprocess": ["summary", "quiz"], "ocr_mode": "force"},
        "filename": "two.pdf",
        "size_bytes": len(data),
    }


def test_seed_upload_path_is_an_alias(api: httpx.Client) -> None:
    response = api.post("/api/documents/upload", files={"file": ("a.pdf", _two_page_pdf())})
    assert response.status_code == 202, response.text
    assert api.get(response.json()["links"]["status"]).json()["status"] == "queued"


@pytest.mark.parametrize(
    ("fields", "mentions"),
    [
        ({"dpi": "abc"}, "dpi"),
        ({"dpi": "5000"}, "dpi"),
        ({"min_confidence": "1.5"}, "min_confidence"),
        ({"min_confidence": "nan"}, "min_confidence"),
        ({"postprocess": "summary,translate"}, "translate"),
        ({"lang_hints": "en;drop table"}, "lang_hints"),
        ({"ocr_mode": "sometimes"}, "auto, force, redo"),
    ],
)
def test_bad_field_is_400(api: httpx.Client, fields: dict[str, str], mentions: str) -> None:
    response = api.post("/api/documents", data=fields, files={"file": ("a.pdf", _two_page_pdf())})
    assert mentions in _error(response, 400, "bad_request")


def test_part_named_file_without_a_filename_is_the_file(api: httpx.Client) -> None:
    data = _two_page_pdf()  # larger than a form field may be
    response = api.post("/api/documents", files={"file": (None, data)})
    assert response.status_code == 202, response.text
    assert response.json()["size_bytes"] == len(data) and response.json()["filename"] is None


def test_a_long_file_name_is_shortened_and_a_monstrous_one_refused_with_our_reason(api: httpx.Client) -> None:
    long_name = "quarterly report " * 200 + ".pdf"  # 3,404 characters
    response = api.post("/api/documents", files={"file": (long_name, _two_page_pdf())})
    assert response.status_code == 202, response.text
    assert long_name.startswith(response.json()["filename"]) and len(response.json()["filename"]) == 255
    # 10,000 characters: python-multipart's own "Maximum header size exceeded" used to answer.
    monstrous = "x" * 10_000 + ".pdf"
    reason = _error(api.post("/api/documents", files={"file": (monstrous, b"%PDF-")}), 400, "bad_request")
    assert "rename the file" in reason and "Maximum header size" not in reason


def test_form_without_a_file_part_is_400(api: httpx.Client) -> None:
    response = api.post("/api/documents", data={"dpi": "200"}, files={"x": (None, "not a file")})
    assert "no file part" in _error(response, 400, "bad_request")


def test_field_after_the_file_is_400(api: httpx.Client) -> None:
    body = b"".join(multipart(iter([_two_page_pdf()]))).replace(
        b"--\r\n",
        b'\r\nContent-Disposition: form-data; name="dpi"\r\n\r\n200\r\n--pagemill-test-boundary--\r\n',
    )
    response = api.post("/api/documents", content=body, headers={"content-type": MULTIPART_TYPE})
    assert "before the file" in _error(response, 400, "bad_request")


def test_truncated_multipart_body_is_400(api: httpx.Client) -> None:
    body = b"".join(multipart(iter([_two_page_pdf()])))[:-40]
    response = api.post("/api/documents", content=body, headers={"content-type": MULTIPART_TYPE})
    _error(response, 400, "bad_request")


def test_unsupported_file_type_is_415(api: httpx.Client) -> None:
    response = api.post("/api/documents", files={"file": ("notes.docx", b"PK\x03\x04" + b"\0" * 200)})
    assert "ZIP" in _error(response, 415, "unsupported_type")
    response = api.post("/api/documents", files={"file": ("empty.pdf", b"")})
    _error(response, 415, "unsupported_type")


def test_body_that_is_not_multipart_is_415(api: httpx.Client) -> None:
    response = api.post("/api/documents", json={"file": "abc"})
    _error(response, 415, "unsupported_media_type")


def test_pdf_that_pdfium_cannot_open_is_422_and_recorded(
    api: httpx.Client, pipeline_settings: Settings
) -> None:
    broken = b"%PDF-1.7\n" + bytes(range(256)) * 40  # a PDF header, then no PDF structure at all
    response = api.post("/api/documents", files={"file": ("broken.pdf", broken)})
    _error(response, 422, "unreadable_document")
    errored = api.get("/api/documents", params={"status": "error"}).json()["items"]
    assert len(errored) == 1 and errored[0]["filename"] == "broken.pdf" and errored[0]["error_message"]
    _, _, exists = _stored(pipeline_settings, errored[0]["id"])
    assert not exists  # the unusable bytes are not kept


def test_declared_length_over_the_limit_is_413_before_reading(serve: Callable[..., str]) -> None:
    limit = 100_000
    with httpx.Client(base_url=serve(max_upload_bytes=limit), timeout=30) as client:
        response = client.post(
            "/api/documents", files={"file": ("big.pdf", b"%PDF-1.4\n" + b"0" * (3 * 1024 * 1024))}
        )
    assert "PAGEMILL_MAX_UPLOAD_BYTES" in _error(response, 413, "limit_exceeded")


def test_streamed_upload_over_the_limit_is_413(serve: Callable[..., str]) -> None:
    limit = 100_000
    with httpx.Client(base_url=serve(max_upload_bytes=limit), timeout=30) as client:
        # A generator body has no Content-Length (chunked), so the limit is found while reading.
        body = multipart(padded_pdf(limit + 50_000))
        response = client.post("/api/documents", content=body, headers={"content-type": MULTIPART_TYPE})
        _error(response, 413, "limit_exceeded")
        assert client.get("/api/documents").json()["total"] == 0
        # Just under the limit is accepted.
        body = multipart(padded_pdf(limit - 2_000))
        response = client.post("/api/documents", content=body, headers={"content-type": MULTIPART_TYPE})
        assert response.status_code == 202, response.text


def test_too_many_pages_is_413(serve: Callable[..., str]) -> None:
    with httpx.Client(base_url=serve(max_pages=1), timeout=30) as client:
        response = client.post("/api/documents", files={"file": ("two.pdf", _two_page_pdf())})
    assert "PAGEMILL_MAX_PAGES" in _error(response, 413, "limit_exceeded")


def test_upload_stays_queued_when_the_broker_fails(web_settings: Callable[..., Settings]) -> None:
    app = create_app(web_settings())
    server = ServerThread(app)
    server.start()
    try:

        class Broken(Producer):
            async def send(self, actor_name: str, **kwargs: object) -> str:
                raise ConnectionError("redis is down")

        app.state.pagemill.producer = Broken(app.state.pagemill.producer.broker)
        with httpx.Client(base_url=server.url, timeout=30) as client:
            response = client.post("/api/documents", files={"file": ("a.pdf", _two_page_pdf())})
            assert response.status_code == 202, response.text
            body = response.json()
            assert body["task_id"] is None and "reaper" in body["message"]
            assert client.get(body["links"]["status"]).json()["status"] == "queued"
    finally:
        server.stop()
