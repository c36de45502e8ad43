"""Over HTTP: upload with postprocess + callback_url -> OCR -> summary + flashcards -> artifacts, .apkg, callback.

A trigger in the test's schema logs every status change of the document together with how
many artifacts existed at that instant, so "never completed before its artifacts exist" is
checked on every transition, not only on what a poller happened to see.
"""

from __future__ import annotations

import io
import json
import sqlite3
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path

import httpx
from dramatiq import Worker
from dramatiq.brokers.redis import RedisBroker

from pipeline import artifacts, callbacks
from pipeline.context import Context
from pipeline.jobs import DocumentStatus
from pipeline.llm.anki import note_fields
from pipeline.settings import Settings
from tests import pages
from tests.fixtures_workers import run_in_context
from tests.llm.chat_server import ChatServer
from tests.llm.conftest import CALLBACK_SECRET
from tests.llm.receiver import Receiver
from tests.web.helpers import read_events

STATUS_LOG = """
CREATE TABLE status_log (n serial PRIMARY KEY, document_id uuid, status text, artifacts integer);
CREATE FUNCTION log_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO status_log (document_id, status, artifacts)
    VALUES (NEW.id, NEW.status, (SELECT count(*) FROM artifacts WHERE document_id = NEW.id));
    RETURN NEW;
END $$;
CREATE TRIGGER documents_status_log AFTER UPDATE OF status ON documents
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION log_status();
"""


def _notes(apkg: bytes, tmp_path: Path) -> tuple[list[list[str]], list[str]]:
    """Fields of every note, and the deck names, read from the package's SQLite collection."""
    with zipfile.ZipFile(io.BytesIO(apkg)) as archive:
        assert "collection.anki2" in archive.namelist()
        path = tmp_path / "collection.anki2"
        path.write_bytes(archive.read("collection.anki2"))
    con = sqlite3.connect(path)
    try:
        notes = [flds.split("\x1f") for (flds,) in con.execute("SELECT flds FROM notes ORDER BY id")]
        (decks_json,) = con.execute("SELECT decks FROM col").fetchone()
    finally:
        con.close()
    return notes, [d["name"] for d in json.loads(decks_json).values()]


def test_upload_postprocess_artifacts_apkg_and_callback_over_http(
    start_worker: Callable[..., Worker],
    web_client: Callable[[Settings], httpx.Client],
    llm_settings: Settings,
    chat_server: ChatServer,
    receiver: Receiver,
    broker: RedisBroker,
    tmp_path: Path,
) -> None:
    from actors.notify import notify_callback

    api = web_client(llm_settings)  # migrates the schema
    run_in_context(llm_settings, lambda ctx: ctx.store.pool.execute(STATUS_LOG))
    start_worker(llm_settings)
    data = pages.pdf_bytes([pages.text_page(pages.PARAGRAPH_A), pages.text_page(pages.PARAGRAPH_B)])

    response = api.post(
        "/api/documents",
        data={"postprocess": "summary,flashcards", "callback_url": receiver.url},
        files={"file": ("course.pdf", data, "application/pdf")},
    )
    assert response.status_code == 202, response.text
    doc_id = response.json()["id"]
    links = response.json()["links"]

    # The stream ends once, with the final status, and by then the artifacts are served.
    events = read_events(api, links["events"])
    assert [name for name, _ in events] == ["page", "page", "end"], events
    assert events[-1][1]["status"] == "completed", events[-1]
    summary = api.get(f"/api/documents/{doc_id}/artifacts/summary")
    cards = api.get(f"/api/documents/{doc_id}/artifacts/flashcards")
    assert summary.status_code == 200 and cards.status_code == 200, (summary.text, cards.text)

    # Every transition: postprocessing straight after aggregating, completed only with both artifacts.
    log = run_in_context(llm_settings, lambda ctx: ctx.store.pool.fetch("SELECT status, artifacts FROM status_log ORDER BY n"))
    transitions = [(r["status"], r["artifacts"]) for r in log]
    assert [s for s, _ in transitions][-3:] == ["aggregating", "postprocessing", "completed"], transitions
    assert [s for s, _ in transitions].count("completed") == 1
    assert transitions[-1] == ("completed", 2)

    # Artifacts: the summary cites the document's pages; cards cite pages that exist.
    body = summary.json()
    assert body["kind"] == "summary" and body["summary"]["title"] and body["pages"] == [1, 2]
    deck = cards.json()["flashcards"]["cards"]
    assert deck and {c["source_page"] for c in deck} <= {1, 2}
    assert api.get(f"/api/documents/{doc_id}/artifacts/quiz").status_code == 404  # not asked for

    # Tokens: per artifact and per document, what the chat server reported, call for call.
    reported = chat_server.usage
    assert summary.json()["usage"]["calls"] + cards.json()["usage"]["calls"] == len(reported)
    assert summary.json()["tokens"] + cards.json()["tokens"] == sum(u["total_tokens"] for u in reported)
    total = run_in_context(llm_settings, lambda ctx: artifacts.document_tokens(ctx.store, doc_id))
    assert total == sum(u["total_tokens"] for u in reported) > 0
    listing = api.get(f"/api/documents/{doc_id}/artifacts").json()
    assert sorted(item["kind"] for item in listing["items"]) == ["flashcards", "summary"]
    assert listing["tokens"] == total
    assert listing["usage"] == {
        "prompt_tokens": sum(u["prompt_tokens"] for u in reported),
        "completion_tokens": sum(u["completion_tokens"] for u in reported),
        "total_tokens": total,
        "calls": len(reported),
    }

    # Anki: a real package whose notes are the flashcards artifact, HTML-escaped, page in a field.
    apkg = api.get(f"/api/documents/{doc_id}/flashcards.apkg")
    assert apkg.status_code == 200 and apkg.headers["content-disposition"].endswith('.apkg"')
    notes, decks = _notes(apkg.content, tmp_path)
    assert notes == [note_fields(card) for card in deck]
    assert "pagemill::course" in decks

    # Callback: one signed POST with the final status and links.
    (hit,) = receiver.wait_for(1)
    assert hit.signature_ok(CALLBACK_SECRET)
    assert not hit.signature_ok("another-secret")
    assert hit.json["id"] == doc_id and hit.json["status"] == "completed" and hit.json["error"] is None
    assert hit.json["links"]["flashcards.apkg"] == f"/api/documents/{doc_id}/flashcards.apkg"

    # A redelivered notification sends nothing more: directly, and as a message through a worker.
    async def again(ctx: Context) -> str:
        async with httpx.AsyncClient() as client:
            return (await callbacks.deliver(ctx, uuid.UUID(doc_id), client=client)).outcome

    assert run_in_context(llm_settings, again) == "already"
    notify_callback.send(document_id=doc_id)
    broker.join(llm_settings.default_queue, timeout=30_000)
    assert len(receiver.received) == 1


def test_apkg_before_and_without_flashcards(
    web_client: Callable[[Settings], httpx.Client], llm_settings: Settings
) -> None:
    api = web_client(llm_settings)
    data = pages.pdf_bytes([pages.text_page(pages.PARAGRAPH_A)])
    doc_id = api.post("/api/documents", files={"file": ("a.pdf", data, "application/pdf")}).json()["id"]
    still = api.get(f"/api/documents/{doc_id}/flashcards.apkg")  # no worker: still queued
    assert still.status_code == 409 and still.json()["error"]["code"] == "not_ready"

    run_in_context(llm_settings, lambda ctx: ctx.store.set_status(uuid.UUID(doc_id), DocumentStatus.COMPLETED))
    none = api.get(f"/api/documents/{doc_id}/flashcards.apkg")
    assert none.status_code == 404 and "no flashcards artifact" in none.json()["error"]["message"]
