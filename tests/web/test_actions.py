"""Cancel and reprocess: state changes, 409 where the state does not allow it, 404 for unknown ids."""

from __future__ import annotations

import uuid

import httpx
import redis
from dramatiq.brokers.redis import RedisBroker

from pipeline.settings import Settings
from tests import pages


def _upload(api: httpx.Client, data: bytes | None = None) -> str:
    data = data or pages.pdf_bytes([pages.blank_page(255)])
    response = api.post("/api/documents", files={"file": ("doc.pdf", data)})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def test_cancel_then_cancel_again_is_409(api: httpx.Client) -> None:
    doc_id = _upload(api)
    response = api.post(f"/api/documents/{doc_id}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert api.get(f"/api/documents/{doc_id}/status").json()["status"] == "cancelled"
    response = api.post(f"/api/documents/{doc_id}/cancel")
    assert response.status_code == 409 and response.json()["error"]["code"] == "conflict"
    assert "already finished" in response.json()["error"]["message"]


def test_cancel_unknown_or_malformed_id_is_404(api: httpx.Client) -> None:
    for doc_id in (uuid.uuid4(), "nope"):
        for action in ("cancel", "reprocess"):
            response = api.post(f"/api/documents/{doc_id}/{action}")
            assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_reprocess_needs_a_finished_document(api: httpx.Client) -> None:
    doc_id = _upload(api)
    response = api.post(f"/api/documents/{doc_id}/reprocess")
    assert response.status_code == 409 and "once it has finished" in response.json()["error"]["message"]
    response = api.post(f"/api/documents/{doc_id}/reprocess", params={"only_failed": "maybe"})
    assert response.status_code == 400


def test_reprocess_requeues_a_refused_document(
    api: httpx.Client, broker: RedisBroker, broker_settings: Settings
) -> None:
    # An upload pdfium cannot open is recorded as `error` with no pages: reprocess sends it again.
    response = api.post("/api/documents", files={"file": ("bad.pdf", b"%PDF-1.4\n" + b"\x00" * 2000)})
    assert response.status_code == 422
    doc_id = api.get("/api/documents", params={"status": "error"}).json()["items"][0]["id"]
    broker.flush_all()
    response = api.post(f"/api/documents/{doc_id}/reprocess", params={"only_failed": "true"})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "queued" and body["pages_reset"] == [] and body["task_id"]
    status = api.get(f"/api/documents/{doc_id}/status").json()
    assert status["status"] == "queued" and status["error_message"] is None
    client = redis.Redis.from_url(str(broker_settings.redis_url))
    assert client.llen(f"{broker_settings.redis_namespace}:{broker_settings.ocr_queue}") == 1
