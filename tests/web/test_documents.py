"""Reading documents back: list, metadata, status and progress shapes, and 404s."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests import pages


def _upload(api: httpx.Client, name: str = "doc.pdf") -> str:
    data = pages.pdf_bytes([pages.blank_page(255)])
    response = api.post("/api/documents", files={"file": (name, data)})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def test_status_and_progress_of_a_queued_document_keep_the_seed_shapes(api: httpx.Client) -> None:
    doc_id = _upload(api)
    status = api.get(f"/api/documents/{doc_id}/status").json()
    assert status["document_id"] == doc_id and status["status"] == "queued"
    assert status["progress_percentage"] == 0.0 and status["error_message"] is None and status["updated_at"]
    assert status["task"]["state"] == "PENDING"
    progress = api.get(f"/api/documents/{doc_id}/progress").json()
    assert progress["status"] == "queued" and progress["chunk_details"] == {}
    assert progress["metadata"]["filename"] == "doc.pdf"
    assert progress["real_time_progress"] == {
        "total_chunks": 0, "completed_chunks": 0, "failed_chunks": 0, "processing_chunks": 0,
        "pending_chunks": 0, "skipped_chunks": 0, "overall_progress": 0.0,
    }  # fmt: skip
    doc = api.get(f"/api/documents/{doc_id}").json()
    assert doc["id"] == doc_id and doc["kind"] == "pdf" and doc["result"] is None
    assert doc["page_counts"] == {"pending": 0, "running": 0, "done": 0, "failed": 0, "skipped": 0}


def test_list_pages_and_filters_by_status(api: httpx.Client) -> None:
    ids = [_upload(api, f"doc{i}.pdf") for i in range(3)]
    assert api.post(f"/api/documents/{ids[0]}/cancel").status_code == 200
    first = api.get("/api/documents", params={"limit": 2}).json()
    assert first["total"] == 3 and len(first["items"]) == 2 and first["next_offset"] == 2
    rest = api.get("/api/documents", params={"limit": 2, "offset": 2}).json()
    assert len(rest["items"]) == 1 and rest["next_offset"] is None
    seen = [d["id"] for d in first["items"] + rest["items"]]
    assert sorted(seen) == sorted(ids) and seen == list(reversed(ids))  # newest first
    cancelled = api.get("/api/documents", params={"status": "cancelled"}).json()
    assert [d["id"] for d in cancelled["items"]] == [ids[0]] and cancelled["total"] == 1


@pytest.mark.parametrize("params", [{"status": "finished"}, {"limit": "0"}, {"limit": "x"}, {"offset": "-1"}])
def test_list_with_a_bad_query_is_400(api: httpx.Client, params: dict[str, str]) -> None:
    response = api.get("/api/documents", params=params)
    assert response.status_code == 400 and response.json()["error"]["code"] == "bad_request"


@pytest.mark.parametrize("suffix", ["", "/status", "/progress", "/text", "/result.json", "/events"])
@pytest.mark.parametrize("doc_id", [str(uuid.uuid4()), "not-a-uuid", "1%20OR%201=1"])
def test_unknown_or_malformed_id_is_404(api: httpx.Client, doc_id: str, suffix: str) -> None:
    response = api.get(f"/api/documents/{doc_id}{suffix}")
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "not_found"


def test_unknown_route_is_a_json_404(api: httpx.Client) -> None:
    response = api.get("/api/nothing-here")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    response = api.delete("/api/documents")
    assert response.status_code == 405 and response.json()["error"]["code"] == "method_not_allowed"


def test_results_before_they_exist_are_409_not_ready(api: httpx.Client) -> None:
    doc_id = _upload(api)
    for suffix in ("/text", "/result.json"):
        response = api.get(f"/api/documents/{doc_id}{suffix}")
        assert response.status_code == 409, response.text
        assert response.json()["error"]["code"] == "not_ready"
