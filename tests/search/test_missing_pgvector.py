"""A PostgreSQL without pgvector (the machine's): migrations pass, embeddings fail naming the
extension, /api/search answers 501 with the same reason, full-text search still works, doctor says so."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
import httpx
from dramatiq import Worker

from pagemill.doctor import run_checks
from pipeline.search.vectors import MISSING_REASON
from pipeline.settings import Settings
from tests.fixtures_workers import run_in_context
from tests.search.test_web_search import VOLCANO, _upload


def _has_pgvector(url: str) -> bool:
    async def probe() -> bool:
        conn = await asyncpg.connect(url)
        try:
            return bool(await conn.fetchval("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"))
        finally:
            await conn.close()

    return asyncio.run(probe())


def test_without_pgvector_embeddings_fail_search_501_text_search_works(
    start_worker: Callable[..., Worker],
    web_client: Callable[[Settings], httpx.Client],
    plain_settings: Settings,
    database_url: str,
) -> None:
    assert not _has_pgvector(database_url), (
        f"{database_url} has pgvector: this test needs a server without it (PAGEMILL_TEST_DATABASE_URL)"
    )
    api = web_client(plain_settings)  # migrates: migration 6 passes without the extension
    columns = run_in_context(plain_settings, lambda ctx: ctx.store.pool.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = 'chunks'"))  # fmt: skip
    assert {"text", "tsv", "page_no"} <= {r["column_name"] for r in columns}
    assert "embedding" not in {r["column_name"] for r in columns}
    start_worker(plain_settings)

    doc_id = _upload(api, "volcano.pdf", [VOLCANO], postprocess="embeddings")
    doc = api.get(f"/api/documents/{doc_id}").json()
    assert doc["status"] == "partial_error"  # the text stands; the step that needs pgvector failed
    assert doc["error_message"] == f"postprocessing failed: embeddings: {MISSING_REASON}"
    assert "pgvector" in doc["error_message"]

    for mode in ("hybrid", "vector"):
        refused = api.get("/api/search", params={"q": "volcano", "mode": mode})
        assert refused.status_code == 501, refused.text
        assert refused.json()["error"] == {"code": "pgvector_missing", "message": MISSING_REASON}
    text = api.get("/api/search", params={"q": "magma ash", "mode": "text"})
    assert text.status_code == 200, text.text
    assert [(r["document_id"], r["page"]) for r in text.json()["results"]] == [(doc_id, 1)]
    assert "magma" in text.json()["results"][0]["snippet"]

    checks = {c.name: c for c in run_checks(plain_settings)}
    assert checks["pgvector"].warn and checks["pgvector"].ok and checks["pgvector"].detail == MISSING_REASON
    wanted = {c.name: c for c in run_checks(plain_settings.model_copy(update={"postprocess": "embeddings"}))}
    assert not wanted["pgvector"].ok and "install pgvector" in wanted["pgvector"].fix
