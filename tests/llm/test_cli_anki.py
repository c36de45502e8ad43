"""``pagemill ocr FILE --anki out.apkg``: OCR, flashcards from the LLM, a deck Anki can import."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

from dramatiq.brokers.redis import RedisBroker

from pipeline import artifacts
from pipeline.context import Context
from pipeline.llm.anki import note_fields
from pipeline.settings import Settings
from tests.fixtures_workers import ROOT, worker_env
from tests.llm.chat_server import ChatServer

SAMPLE = ROOT / "pagemill" / "samples" / "sample.pdf"


def _cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pagemill.cli", "ocr", *args],
        check=False, env=env, capture_output=True, text=True, timeout=300, cwd=cwd,
    )  # fmt: skip


def test_anki_without_an_api_key_fails_with_a_clear_message(pipeline_settings: Settings, tmp_path: Path) -> None:
    env = {k: v for k, v in worker_env(pipeline_settings).items() if not k.startswith("OPENAI_")}
    result = _cli(env, tmp_path, str(SAMPLE), "--anki", str(tmp_path / "deck.apkg"))
    assert result.returncode == 2, result.stderr
    assert "--anki needs an LLM" in result.stderr and "OPENAI_API_KEY" in result.stderr
    assert not (tmp_path / "deck.apkg").exists()


def test_anki_writes_the_flashcards_as_an_apkg(
    broker: RedisBroker, pipeline_settings: Settings, chat_server: ChatServer, tmp_path: Path
) -> None:
    broker.flush_all()
    env = worker_env(pipeline_settings) | {
        "OPENAI_BASE_URL": chat_server.base_url,
        "OPENAI_API_KEY": "test-key",
        "OPENAI_MODEL": "test-model",
    }
    target = tmp_path / "deck.apkg"
    result = _cli(env, tmp_path, str(SAMPLE), "--anki", str(target))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "pagemill sample document" in result.stdout  # the text is printed as without --anki
    assert f"flashcards -> {target}" in result.stderr.replace("\n", "")  # rich wraps long lines

    async def cards() -> list[dict[str, object]]:
        ctx = await Context.open(pipeline_settings)
        try:
            (doc,) = await ctx.store.list_documents()
            return list((await artifacts.get_artifact(ctx.store, doc.id, "flashcards")).data["flashcards"]["cards"])
        finally:
            await ctx.aclose()

    deck = asyncio.run(cards())
    with zipfile.ZipFile(target) as archive:
        (tmp_path / "collection.anki2").write_bytes(archive.read("collection.anki2"))
    con = sqlite3.connect(tmp_path / "collection.anki2")
    try:
        notes = [flds.split("\x1f") for (flds,) in con.execute("SELECT flds FROM notes ORDER BY id")]
    finally:
        con.close()
    assert deck and notes == [note_fields(card) for card in deck]
