"""Commands that read or change the job store: ``status``, ``stats``, ``search``, ``migrate``."""

from __future__ import annotations

import json
import sys

import click

from pagemill.cli._app import err, main, with_job_store
from pipeline.errors import PagemillError
from pipeline.jobs import JobStore
from pipeline.settings import Settings


@main.command()
@click.argument("document_id")
def status(document_id: str) -> None:
    """Show a document's status, progress and errors."""
    from pipeline.jobs import PageStatus

    async def show(store: JobStore, _: Settings) -> int:
        try:
            doc = await store.get_document(document_id)
            counts = await store.page_counts(doc.id)
            pages = await store.list_pages(doc.id)
        except PagemillError as exc:
            err.print(f"[red]{exc.reason}[/red]")
            return 1
        click.echo(f"{doc.id}  {doc.filename or ''}  {doc.status.value}")
        click.echo(f"pages: {doc.pages_finished}/{doc.page_count or '?'} finished  "
                   + "  ".join(f"{s.value}={n}" for s, n in counts.items() if n))  # fmt: skip
        for page in pages:
            if page.status is PageStatus.FAILED:
                click.echo(f"  page {page.page_no}: {page.error}")
        if doc.error:
            click.echo(f"error: {doc.error}")
        return 0

    sys.exit(with_job_store(show))


@main.command()
@click.argument("query")
@click.option("--limit", default=10, show_default=True, type=click.IntRange(1, 50), help="Documents to show.")
@click.option("--status", "statuses", multiple=True, help="Only documents in this status (repeatable).")
@click.option("--tag", default=None, help="Only documents with this metadata or summary tag.")
@click.option(
    "--mode", type=click.Choice(["hybrid", "vector", "text"]), default="hybrid", show_default=True,
    help="text: full-text search alone (works without pgvector and without an embedding model).",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="The same JSON GET /api/search answers.")
def search(query: str, limit: int, statuses: tuple[str, ...], tag: str | None, mode: str, as_json: bool) -> None:
    """Find documents by meaning and exact words (needs the embeddings step run on them)."""
    from pipeline.llm.client import LlmClient
    from pipeline.logs import setup_logging
    from pipeline.search.query import SearchMode, SearchResults
    from pipeline.search.query import search as run_search

    settings = Settings()
    # Logs on stderr, warnings only unless asked for: stdout is the results (--json is piped).
    setup_logging(level=settings.log_level if settings.log_level != "INFO" else "WARNING", fmt=settings.log_format)

    async def find(store: JobStore, live: Settings) -> SearchResults:
        clients: list[LlmClient] = []

        async def embed(text: str) -> list[float]:
            client = LlmClient.from_settings(live, base_url=live.embedding_base_url or live.openai_base_url)
            clients.append(client)
            answer = await client.embed([text], model=live.embedding_model, dimensions=live.embedding_dimensions or None)
            return answer.vectors[0]

        try:
            return await run_search(
                store, query, embed=embed, mode=SearchMode(mode), limit=limit, statuses=statuses,
                tag=tag, ef_search=live.search_ef_search, min_similarity=live.search_min_similarity,
            )  # fmt: skip
        finally:
            for client in clients:
                await client.aclose()

    try:
        results = with_job_store(find)
    except PagemillError as exc:
        err.print(f"[red]{exc.reason}[/red]")
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(results.to_json(), ensure_ascii=False, indent=2))
        return
    if not results.hits:
        err.print("no documents found")
    for n, hit in enumerate(results.hits, 1):
        click.echo(f"{n:>2}. {hit.score:.4f}  {hit.document_id}  {hit.filename or ''}  [{hit.status.value}]")
        for match in hit.matches:
            click.echo(f"      page {match.page_no}: {match.snippet}")


@main.command()
@click.option("--days", default=7, show_default=True, type=click.IntRange(1, 366), help="How many days, newest first.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, as stored.")
def stats(days: int, as_json: bool) -> None:
    """Show the daily summaries the clock stores (documents, pages/s, failure reasons, tokens)."""
    from pipeline.stats import DailySummary, stored_days

    async def read(store: JobStore, _: Settings) -> list[DailySummary]:
        return await stored_days(store, days=days)

    summaries = with_job_store(read)
    if not summaries:
        err.print("no daily summaries yet: the clock process (periodiq actors.broker:setup_broker actors.maintenance) stores one at 00:05")
    for s in summaries:
        if as_json:
            click.echo(json.dumps(s.to_json()))
            continue
        finished = ", ".join(f"{k}={v}" for k, v in sorted(s.documents_finished.items())) or "none"
        click.echo(f"{s.day}  documents finished: {finished}  created: {sum(s.documents_created.values())}")
        times = "  ".join(f"{k}={v:g}s" for k, v in s.document_seconds.items())
        click.echo(f"  pages: {s.pages_processed} ({s.pages_failed} failed)  {s.pages_per_s:.4f}/s average, "
                   f"{s.peak_pages_per_s:.2f}/s busiest minute" + (f"  document time {times}" if times else ""))
        if s.llm_tokens:
            click.echo("  LLM tokens: " + ", ".join(f"{k}={v}" for k, v in s.llm_tokens.items()))
        for r in s.failure_reasons:
            click.echo(f"  {r.count:>5} x {r.reason}")


@main.command()
def migrate() -> None:
    """Apply the job store's schema migrations."""

    async def run(store: JobStore, live: Settings) -> str:
        return f"schema {live.db_schema} at version {await store.migrate()}"

    click.echo(with_job_store(run, migrate=False))
