"""Raw multipart bodies (every byte under the test's control) and the error-shape assertion."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

BOUNDARY = b"pagemill-security-boundary"
MULTIPART = "multipart/form-data; boundary=" + BOUNDARY.decode()
# Phrases that must never reach a client: they mean an exception escaped unhandled.
LEAKS = ("Traceback", "internal_error", "internal error", 'File "/')


@dataclass(frozen=True)
class Part:
    """One multipart part; ``filename`` (raw bytes) makes it a file part."""

    name: bytes
    value: bytes
    filename: bytes | None = None
    content_type: bytes | None = None
    extra_headers: list[bytes] = field(default_factory=list)


def file_part(data: bytes, filename: bytes = b"doc.pdf") -> Part:
    return Part(b"file", data, filename, b"application/octet-stream")


def body(parts: list[Part], *, boundary: bytes = BOUNDARY, close: bool = True) -> bytes:
    """A multipart/form-data body; ``close=False`` leaves out the closing boundary."""
    out = bytearray()
    for part in parts:
        disposition = b'form-data; name="' + part.name + b'"'
        if part.filename is not None:
            disposition += b'; filename="' + part.filename + b'"'
        out += b"--" + boundary + b"\r\nContent-Disposition: " + disposition + b"\r\n"
        if part.content_type:
            out += b"Content-Type: " + part.content_type + b"\r\n"
        for header in part.extra_headers:
            out += header + b"\r\n"
        out += b"\r\n" + part.value + b"\r\n"
    if close:
        out += b"--" + boundary + b"--\r\n"
    return bytes(out)


def upload(client: httpx.Client, parts: list[Part], **kwargs: object) -> httpx.Response:
    """POST a raw multipart body to the upload route."""
    return client.post(
        "/api/documents",
        content=body(parts, **kwargs),
        headers={"Content-Type": MULTIPART},  # type: ignore[arg-type]
    )


def assert_error(response: httpx.Response, status: int, code: str, *phrases: str) -> str:
    """``response`` is ``status`` with ``{"error": {"code", "message"}}`` naming the problem."""
    assert response.status_code == status, f"{response.status_code}: {response.text[:500]}"
    assert response.headers["content-type"].startswith("application/json"), response.headers
    error = response.json()["error"]
    assert error["code"] == code, error
    message = error["message"]
    assert isinstance(message, str) and len(message) > 10, error
    assert not any(leak in message for leak in LEAKS), message
    for phrase in phrases:
        assert phrase.lower() in message.lower(), f"{phrase!r} not in {message!r}"
    return message


def raw_request(
    url: str, head: bytes, body: bytes = b"", *, timeout: float = 10
) -> tuple[int, dict[str, Any]]:
    """Send bytes no well-behaved client would (a lying Content-Length); status and JSON body."""
    where = urlsplit(url)
    with socket.create_connection((where.hostname, where.port), timeout=timeout) as sock:
        sock.sendall(head + b"\r\n\r\n" + body)
        received = bytearray()
        while chunk := sock.recv(65536):
            received += chunk
            head_end = received.find(b"\r\n\r\n")
            if head_end >= 0:
                headers = received[:head_end].decode("latin-1").lower()
                length = next(
                    (
                        int(line.split(":")[1])
                        for line in headers.splitlines()
                        if line.startswith("content-length:")
                    ),
                    None,
                )
                if length is not None and len(received) >= head_end + 4 + length:
                    break
    status = int(received.split(b" ", 2)[1])
    payload = received[received.find(b"\r\n\r\n") + 4 :]
    return status, json.loads(payload)
