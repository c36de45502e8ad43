"""Hostile files uploaded to the running app: refused with a 4xx that says why, or processed
safely to a final state by the worker process (a failure carrying a readable reason)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest
from PIL import Image

from pipeline.jobs import DocumentStatus
from tests.security import corpus
from tests.security._http import LEAKS, assert_error, file_part, raw_request, upload
from tests.security.conftest import API_KEY, MAX_PAGES, MAX_UPLOAD_BYTES, Stack


@dataclass(frozen=True)
class Refused:
    """The upload is answered with this status and code, the message naming the problem."""

    status: int
    code: str
    phrases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Processed:
    """Accepted (202); the worker takes it to one of ``states``; an error names ``phrases``."""

    states: frozenset[DocumentStatus]
    phrases: tuple[str, ...] = ()
    text: str = ""  # what the OCR must find on a completed page


COMPLETES = Processed(frozenset({DocumentStatus.COMPLETED}))
# The small PDFs of corpus.one_page_pdf say "Hello": the page was really read, scripts ignored.
SAYS_HELLO = Processed(frozenset({DocumentStatus.COMPLETED}), text="Hello")
UNSUPPORTED = Refused(415, "unsupported_type", ("upload a PDF",))
UNREADABLE = Refused(422, "unreadable_document")
TOO_LARGE = Refused(413, "limit_exceeded", ("PAGEMILL_MAX_PAGE_PIXELS",))


def _gray(width: int, height: int, fmt: str) -> Callable[[], bytes]:
    return lambda: corpus.image_bytes(Image.new("L", (width, height), 255), fmt)


# (id, builder, filename, expectation)
FILES: list[tuple[str, Callable[[], bytes], str, Refused | Processed]] = [
    ("empty-file", lambda: b"", "empty.pdf", Refused(415, "unsupported_type", ("empty",))),
    ("truncated-pdf", lambda: corpus.truncated(corpus.good_pdf(), 0.3), "cut.pdf", UNREADABLE),
    ("pdf-header-only", lambda: b"%PDF-1.7\n", "header.pdf", UNREADABLE),
    ("exe-named-pdf", lambda: b"MZ\x90\x00\x03\x00\x00\x00" + bytes(200), "report.pdf", UNSUPPORTED),
    (
        "text-named-png",
        lambda: b"just some text\nnot an image\n",
        "scan.png",
        Refused(415, "unsupported_type", ("plain text",)),
    ),
    (
        "html-named-pdf",
        lambda: b"<!DOCTYPE html><html><script>alert(1)</script></html>",
        "a.pdf",
        Refused(415, "unsupported_type", ("HTML",)),
    ),
    (
        "zip-named-pdf",
        lambda: b"PK\x03\x04" + bytes(100),
        "a.pdf",
        Refused(415, "unsupported_type", ("ZIP",)),
    ),
    ("gif-named-png", lambda: b"GIF89a" + bytes(50), "a.png", Refused(415, "unsupported_type", ("GIF",))),
    ("pdf-header-after-2k-junk", lambda: bytes(2048) + corpus.one_page_pdf(), "late.pdf", UNSUPPORTED),
    ("encrypted-pdf", corpus.encrypted_pdf, "locked.pdf", Refused(422, "encrypted_document", ("password",))),
    (
        "pdf-10000-pages",
        lambda: corpus.many_pages_pdf(10_000),
        "many.pdf",
        Refused(413, "limit_exceeded", ("10000 pages", "PAGEMILL_MAX_PAGES")),
    ),
    ("pdf-page-tree-loop", corpus.page_tree_loop_pdf, "loop.pdf", UNREADABLE),
    (
        "pdf-mediabox-200000pt",
        lambda: corpus.one_page_pdf(box=(0, 0, 200_000, 200_000)),
        "huge.pdf",
        TOO_LARGE,
    ),
    ("pdf-garbage-xref-and-objects", corpus.garbage_pdf, "garbage.pdf", UNREADABLE),
    ("png-bomb-100000x100000", corpus.png_bomb, "bomb.png", Refused(413, "limit_exceeded", ("too large",))),
    ("png-8000x8000-over-pixel-limit", lambda: corpus.png_bomb(8000, 8000), "big.png", TOO_LARGE),
    (
        "tiff-bomb-100000x100000",
        corpus.tiff_bomb,
        "bomb.tiff",
        Refused(413, "limit_exceeded", ("too large",)),
    ),
    ("png-truncated", lambda: corpus.truncated(_gray(400, 300, "PNG")(), 0.5), "cut.png", UNREADABLE),
    ("jpeg-header-only", lambda: b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "cut.jpg", UNREADABLE),
    ("webp-header-only", lambda: b"RIFF\x10\x00\x00\x00WEBPVP8 ", "cut.webp", UNREADABLE),
    ("tiff-header-only", lambda: b"II*\x00\x08\x00\x00\x00", "cut.tiff", UNREADABLE),
    # Processed: pdfium and Pillow cope; the worker must take each to a final state and stay up.
    ("pdf-count-claims-a-billion-pages", corpus.lying_count_pdf, "lies.pdf", COMPLETES),
    ("pdf-mediabox-1e308", lambda: corpus.one_page_pdf(box=(0, 0, 1e308, 1e308)), "inf.pdf", SAYS_HELLO),
    ("pdf-mediabox-negative", lambda: corpus.one_page_pdf(box=(0, 0, -500, -500)), "neg.pdf", COMPLETES),
    ("pdf-100000-nested-arrays", corpus.deep_nesting_pdf, "deep.pdf", SAYS_HELLO),
    ("pdf-xref-offsets-wrong", corpus.broken_xref_pdf, "xref.pdf", SAYS_HELLO),
    ("pdf-javascript-openaction", corpus.javascript_pdf, "js.pdf", SAYS_HELLO),
    ("pdf-xfa-form", corpus.xfa_pdf, "xfa.pdf", SAYS_HELLO),
    ("pdf-embedded-exe-launch-action", corpus.embedded_file_pdf, "embedded.pdf", SAYS_HELLO),
    ("tiff-ifd-loop", corpus.tiff_ifd_loop, "loop.tiff", COMPLETES),
    ("png-1x1-pixel", _gray(1, 1, "PNG"), "dot.png", COMPLETES),
    ("png-20000x3-sliver", _gray(20_000, 3, "PNG"), "sliver.png", COMPLETES),
]


@pytest.mark.parametrize(
    ("builder", "filename", "expected"), [c[1:] for c in FILES], ids=[c[0] for c in FILES]
)
def test_hostile_file(
    stack: Stack,
    api: httpx.Client,
    builder: Callable[[], bytes],
    filename: str,
    expected: Refused | Processed,
) -> None:
    response = upload(api, [file_part(builder(), filename.encode())])
    if isinstance(expected, Refused):
        assert_error(response, expected.status, expected.code, *expected.phrases)
        return
    assert response.status_code == 202, response.text
    doc = stack.wait(response.json()["id"])
    assert doc.status in expected.states, (doc.status, doc.error)
    if doc.status is DocumentStatus.COMPLETED:
        text = api.get(f"/api/documents/{doc.id}/text")
        assert text.status_code == 200 and expected.text in text.text, text.text
    else:
        assert doc.error and not any(leak in doc.error for leak in LEAKS), doc.error
        for phrase in expected.phrases:
            assert phrase in doc.error
    assert stack.worker_alive()


def test_upload_over_the_size_limit_is_refused_and_not_kept(stack: Stack, api: httpx.Client) -> None:
    before = stack.stored_keys()
    data = corpus.one_page_pdf() + b"%" + b"p" * MAX_UPLOAD_BYTES + b"\n"
    response = upload(api, [file_part(data, b"big.pdf")])
    assert_error(response, 413, "limit_exceeded", "PAGEMILL_MAX_UPLOAD_BYTES")
    assert stack.stored_keys() == before


def test_declared_content_length_over_the_limit_is_refused_before_reading(stack: Stack) -> None:
    head = (
        "POST /api/documents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + API_KEY + "\r\n"
        f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {10**12}"
    ).encode()
    status, payload = raw_request(stack.url, head, b"--b\r\n")  # the rest never comes
    assert status == 413, payload
    assert (
        payload["error"]["code"] == "limit_exceeded"
        and "PAGEMILL_MAX_UPLOAD_BYTES" in payload["error"]["message"]
    )


def test_limit_is_the_configured_one(api: httpx.Client) -> None:
    response = upload(api, [file_part(corpus.many_pages_pdf(MAX_PAGES + 1), b"pages.pdf")])
    assert_error(response, 413, "limit_exceeded", f"{MAX_PAGES + 1} pages")
