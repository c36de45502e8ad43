"""Request bodies and readers for the web tests: padded PDFs built on the fly, an SSE reader."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx

BOUNDARY = "pagemill-test-boundary"
# Size of each padding line in a padded PDF, bytes (a PDF comment line).
PAD_LINE_BYTES = 1024
# Reading an event stream: the server is silent while a page is OCRed, seconds.
SSE_READ_TIMEOUT_S = 120


def padded_pdf(total_bytes: int, chunk_bytes: int = 256 * 1024) -> Iterator[bytes]:
    """A valid one-page PDF of about ``total_bytes``, generated in chunks (never held whole).

    The padding is comment lines after the header; the xref offsets account for it, so pdfium
    opens the file without scanning it.
    """
    header = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"
    line = b"%" + b"p" * (PAD_LINE_BYTES - 2) + b"\n"
    lines = max(0, (total_bytes - 1024) // PAD_LINE_BYTES)
    yield header
    per_chunk = max(1, chunk_bytes // PAD_LINE_BYTES)
    for start in range(0, lines, per_chunk):
        yield line * min(per_chunk, lines - start)
    offset = len(header) + lines * PAD_LINE_BYTES
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
    ]
    body = b""
    offsets = []
    for number, obj in enumerate(objects, 1):
        offsets.append(offset + len(body))
        body += b"%d 0 obj\n%s\nendobj\n" % (number, obj)
    xref = offset + len(body)
    body += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    body += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    body += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    yield body


def multipart(
    file_chunks: Iterator[bytes], *, filename: str = "doc.pdf", fields: dict[str, str] | None = None
) -> Iterator[bytes]:
    """A multipart/form-data body (boundary BOUNDARY) streamed from ``file_chunks``."""
    for name, value in (fields or {}).items():
        yield (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n').encode()
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    yield from file_chunks
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


MULTIPART_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def read_events(client: httpx.Client, url: str) -> list[tuple[str, dict[str, Any]]]:
    """Read a Server-Sent Events stream until its ``end`` event (or until it closes)."""
    events: list[tuple[str, dict[str, Any]]] = []
    name, data = "message", []
    timeout = httpx.Timeout(10, read=SSE_READ_TIMEOUT_S)
    with client.stream("GET", url, timeout=timeout) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line == "":
                if data:
                    events.append((name, json.loads("\n".join(data))))
                    if name == "end":
                        break
                name, data = "message", []
                continue
            if line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
    return events
