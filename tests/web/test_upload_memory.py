"""Uploads stream: the server's memory does not grow with the size of the body.

The server runs in this process (a thread), so this process's peak RSS is the server's. The
peak (Linux VmHWM, reset through /proc/self/clear_refs) is measured, not RSS afterwards: a
buffered body would be freed, and its pages returned to the OS, once the request ends.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil

from tests.web.helpers import MULTIPART_TYPE, multipart, padded_pdf

MIB = 1024 * 1024
# Body sizes and allowed RSS growth, bytes.
REFUSED_BODY = 50 * MIB
REFUSED_GROWTH = 20 * MIB
ACCEPTED_BODY = 200 * MIB
ACCEPTED_LIMIT = 300 * MIB
ACCEPTED_GROWTH = 50 * MIB


def _rss() -> int:
    gc.collect()
    return int(psutil.Process().memory_info().rss)


def _reset_peak() -> int:
    """Reset the peak-RSS mark to the current RSS; returns that RSS."""
    rss = _rss()
    Path("/proc/self/clear_refs").write_text("5")
    return rss


def _peak() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/self/status")


def _warm_up(client: httpx.Client) -> None:
    # Pools, imports and first-request allocations happen before the measurement.
    for _ in range(2):
        body = multipart(padded_pdf(2 * MIB))
        assert (
            client.post("/api/documents", content=body, headers={"content-type": MULTIPART_TYPE}).status_code
            == 202
        )


def test_upload_over_the_limit_is_refused_without_buffering_it(serve: Callable[..., str]) -> None:
    with httpx.Client(base_url=serve(max_upload_bytes=4 * MIB), timeout=60) as client:
        _warm_up(client)
        before = _reset_peak()
        body = multipart(padded_pdf(REFUSED_BODY))  # no Content-Length: the server finds out while reading
        response = client.post("/api/documents", content=body, headers={"content-type": MULTIPART_TYPE})
        grown = _peak() - before
    assert response.status_code == 413, response.text
    assert grown < REFUSED_GROWTH, f"RSS grew by {grown / MIB:.1f} MiB"


def test_large_upload_streams_to_storage(serve: Callable[..., str]) -> None:
    with httpx.Client(base_url=serve(max_upload_bytes=ACCEPTED_LIMIT), timeout=120) as client:
        _warm_up(client)
        before = _reset_peak()
        body = multipart(padded_pdf(ACCEPTED_BODY, chunk_bytes=MIB), filename="big.pdf")
        response = client.post("/api/documents", content=body, headers={"content-type": MULTIPART_TYPE})
        grown = _peak() - before
        assert response.status_code == 202, response.text
        doc = client.get(response.json()["links"]["self"]).json()
    assert doc["size_bytes"] >= ACCEPTED_BODY - MIB and doc["status"] == "queued"
    assert grown < ACCEPTED_GROWTH, (
        f"RSS grew by {grown / MIB:.1f} MiB for a {ACCEPTED_BODY // MIB} MiB upload"
    )
