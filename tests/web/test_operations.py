"""Health, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
from dramatiq.brokers.redis import RedisBroker
from starlette.routing import Route

from pipeline.settings import Settings
from tests import pages
from web.app import ROUTES


def test_healthz_and_readyz_name_each_dependency(api: httpx.Client) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}
    response = api.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"redis": {"status": "ok"}, "postgresql": {"status": "ok"}, "storage": {"status": "ok"}},
    }


def test_readyz_is_503_and_names_broken_storage(serve: Callable[..., str], tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the data directory should be")
    with httpx.Client(base_url=serve(data_dir=blocker), timeout=30) as client:
        response = client.get("/readyz")
        assert client.get("/healthz").status_code == 200
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["redis"] == {"status": "ok"} and checks["postgresql"] == {"status": "ok"}
    assert checks["storage"]["status"] == "error" and "not writable" in checks["storage"]["error"]


def _sample(text: str, name: str, labels: str = "") -> float:
    prefix = f"{name}{{{labels}}} " if labels else f"{name} "
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    raise AssertionError(f"{prefix!r} not in metrics:\n{text}")


def test_metrics_count_uploads_states_and_queues(
    api: httpx.Client, broker: RedisBroker, broker_settings: Settings
) -> None:
    broker.flush_all()
    data = pages.pdf_bytes([pages.blank_page(255)])
    assert api.post("/api/documents", files={"file": ("a.pdf", data)}).status_code == 202
    assert api.post("/api/documents", files={"file": ("a.txt", b"plain text")}).status_code == 415
    response = api.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert _sample(text, "pagemill_uploads_total", 'outcome="accepted"') == 1
    assert _sample(text, "pagemill_uploads_total", 'outcome="unsupported_type"') == 1
    assert _sample(text, "pagemill_upload_bytes_total") == len(data)
    assert _sample(text, "pagemill_documents", 'state="queued"') == 1
    assert _sample(text, "pagemill_documents", 'state="completed"') == 0
    ocr = broker_settings.ocr_queue
    assert _sample(text, "pagemill_queue_messages", f'kind="ready",queue="{ocr}"') == 1
    assert _sample(text, "pagemill_queue_messages", f'kind="delayed",queue="{ocr}"') == 0
    assert (
        _sample(text, "pagemill_queue_messages", f'kind="dead",queue="{broker_settings.default_queue}"') == 0
    )
    assert _sample(text, "pagemill_page_duration_seconds_gcount") == 0
    assert _sample(text, "pagemill_page_duration_seconds_bucket", 'le="+Inf"') == 0
    assert _sample(text, "pagemill_source_up", 'source="postgresql"') == 1


def test_openapi_lists_every_route_and_method(api: httpx.Client) -> None:
    schema = api.get("/openapi.json").json()
    assert schema["openapi"].startswith("3.")
    expected = {
        (route.path, method.lower())
        for route in ROUTES
        if isinstance(route, Route)
        for method in (route.methods or ())
        if method != "HEAD"
    }
    listed = {(path, method) for path, ops in schema["paths"].items() for method in ops}
    assert listed == expected
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            assert op.get("summary") and op.get("responses"), (path, method)
    upload = schema["paths"]["/api/documents"]["post"]
    assert "multipart/form-data" in upload["requestBody"]["content"]
    assert {"202", "400", "413", "415", "422"} <= set(upload["responses"])
