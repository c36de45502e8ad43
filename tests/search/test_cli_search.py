"""``pagemill search`` as a user runs it: a subprocess reading the environment, real servers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pipeline.context import Context
from pipeline.llm.client import LlmClient
from pipeline.search import embed_document
from pipeline.search.vectors import MISSING_REASON
from pipeline.settings import Settings
from tests.fixtures_workers import run_in_context
from tests.search.corpus import INVOICE_FILE, INVOICE_NUMBER, TOPICS, add_text_document
from tests.search.test_search import run

ROOT = Path(__file__).resolve().parents[2]


def _pagemill(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    assert settings.database_url is not None and settings.openai_base_url
    env = dict(os.environ)
    env.update(
        DATABASE_URL=settings.database_url.get_secret_value(),
        PAGEMILL_DB_SCHEMA=settings.db_schema,
        PAGEMILL_DATA_DIR=str(settings.data_dir),
        OPENAI_BASE_URL=settings.openai_base_url,
        OPENAI_API_KEY="test-key",
        OPENAI_EMBEDDING_MODEL=settings.embedding_model,
        PYTHONPATH=str(ROOT),
    )
    return subprocess.run(
        [sys.executable, "-m", "pagemill.cli", "search", *args],
        check=False, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_cli_search_ranks_like_the_api(vector_settings: Settings) -> None:
    async def corpus(ctx: Context, client: LlmClient) -> None:
        for topic in TOPICS:
            doc = await add_text_document(ctx.store, topic.filename, topic.pages)
            await embed_document(ctx, client, doc.id)

    run(vector_settings, corpus)
    table = _pagemill(vector_settings, TOPICS[3].query, "--limit", "3")
    assert table.returncode == 0, table.stderr
    first = table.stdout.splitlines()[0]
    assert first.startswith(" 1. ") and TOPICS[3].filename in first, table.stdout
    assert "page 1: Chess openings" in table.stdout
    exact = _pagemill(vector_settings, INVOICE_NUMBER, "--json", "--limit", "1")
    assert exact.returncode == 0, exact.stderr
    body = json.loads(exact.stdout)
    assert [r["filename"] for r in body["results"]] == [INVOICE_FILE] and body["mode"] == "hybrid"
    bad = _pagemill(vector_settings, "x", "--status", "finished")
    assert bad.returncode == 1 and "status: 'finished' is not one of" in bad.stderr


def test_cli_search_without_pgvector_names_it_and_text_mode_works(plain_settings: Settings) -> None:
    async def corpus(ctx: Context) -> None:
        from pipeline.llm.chunking import PageText
        from pipeline.search.chunking import cut_pages
        from pipeline.search.index import replace_chunks

        doc = await add_text_document(ctx.store, INVOICE_FILE, TOPICS[-3].pages)
        await replace_chunks(ctx.store, doc.id, cut_pages([PageText(1, TOPICS[-3].pages[0])], max_chars=400))

    run_in_context(plain_settings, corpus)
    refused = _pagemill(plain_settings, INVOICE_NUMBER)
    assert refused.returncode == 1 and " ".join(refused.stderr.split()) == MISSING_REASON
    text = _pagemill(plain_settings, INVOICE_NUMBER, "--mode", "text", "--json")
    assert text.returncode == 0, text.stderr
    assert [r["filename"] for r in json.loads(text.stdout)["results"]] == [INVOICE_FILE]
