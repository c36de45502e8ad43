"""Over HTTP with real workers: upload -> text -> metadata + embeddings (by default) -> /api/search."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from dramatiq import Worker

from pipeline.settings import Settings
from tests import born_digital
from tests.llm.chat_server import ChatServer
from tests.web.helpers import read_events

VOLCANO = (
    "Volcanic eruptions",
    "During an eruption a volcano forces molten magma, ash clouds",
    "and sulphur gases up through fissures in the crust.",
)
INVOICE = ("INVOICE", "Invoice number INV-2024-00731", "Nordwind Logistics GmbH, Hamburg", "Total 1,250.00 EUR")


def _upload(api: httpx.Client, name: str, pages: list[tuple[str, ...]], **fields: str) -> str:
    data = born_digital.pdf_bytes([born_digital.single("Helvetica", lines) for lines in pages])
    response = api.post("/api/documents", data=fields, files={"file": (name, data, "application/pdf")})
    assert response.status_code == 202, response.text
    events = read_events(api, response.json()["links"]["events"])
    assert events[-1][0] == "end", events
    return str(response.json()["id"])


def test_default_steps_then_search_over_http(
    start_worker: Callable[..., Worker],
    web_client: Callable[[Settings], httpx.Client],
    vector_settings: Settings,
    chat_server: ChatServer,
) -> None:
    settings = vector_settings.model_copy(update={"postprocess": "metadata,embeddings"})
    api = web_client(settings)
    start_worker(settings)
    volcano = _upload(api, "scan0001.pdf", [VOLCANO, ("Lava flows can bury whole villages.",)])
    invoice = _upload(api, "scan0002.pdf", [INVOICE])
    skipped = _upload(api, "scan0003.pdf", [VOLCANO], postprocess="none")

    doc = api.get(f"/api/documents/{volcano}").json()
    assert doc["status"] == "completed", doc
    kinds = sorted(i["kind"] for i in api.get(f"/api/documents/{volcano}/artifacts").json()["items"])
    assert kinds == ["embeddings", "metadata"]  # PAGEMILL_POSTPROCESS applied to an upload naming none
    metadata = api.get(f"/api/documents/{volcano}/artifacts/metadata").json()["metadata"]
    assert metadata["filename_suggestion"].endswith(".pdf") and "/" not in metadata["filename_suggestion"]
    assert metadata["document_type"] and metadata["language"] and isinstance(metadata["parties"], list)
    assert api.get(f"/api/documents/{skipped}/artifacts").json()["items"] == []  # postprocess=none
    embedded = api.get(f"/api/documents/{volcano}/artifacts/embeddings").json()
    assert embedded["chunks"] == 2 and embedded["pages"] == [1, 2] and embedded["dims"] == 256
    assert embedded["tokens"] == embedded["usage"]["total_tokens"] > 0

    found = api.get("/api/search", params={"q": "what comes out when volcanoes erupt"})
    assert found.status_code == 200, found.text
    results = found.json()["results"]
    assert [r["document_id"] for r in results][:1] == [volcano], results
    first = results[0]
    assert first["page"] == 1 and "magma" in first["snippet"] and first["score"] > 0
    assert first["filename"] == "scan0001.pdf" and first["status"] == "completed"
    assert skipped not in [r["document_id"] for r in results]  # never embedded
    exact = api.get("/api/search", params={"q": "INV-2024-00731", "limit": "1"}).json()["results"]
    assert [r["document_id"] for r in exact] == [invoice] and exact[0]["matches"][0]["text_rank"] == 1
    only_errors = api.get("/api/search", params={"q": "volcano", "status": "error"}).json()
    assert only_errors["results"] == []

    for params, named in (
        ({}, "q"),
        ({"q": "  "}, "q"),
        ({"q": "x", "limit": "0"}, "limit"),
        ({"q": "x", "limit": "ten"}, "limit"),
        ({"q": "x", "mode": "fuzzy"}, "mode"),
        ({"q": "x", "status": "finished"}, "status"),
        ({"q": "x", "tag": ""}, "tag"),
        ({"q": "x", "qq": "y"}, "qq"),
    ):
        bad = api.get("/api/search", params=params)
        assert bad.status_code == 400, (params, bad.text)
        assert bad.json()["error"]["code"] == "bad_request" and named in bad.json()["error"]["message"], bad.text
