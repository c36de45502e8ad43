"""The ``pagemill`` command: OCR files from a terminal, manage the job store.

``pagemill ocr FILE...`` submits files through the same actors the HTTP API uses, with an
in-process Dramatiq worker, and embedded Redis/PostgreSQL when none is configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from pipeline.errors import PagemillError
from pipeline.outputs.formats import OUTPUTS
from pipeline.settings import Settings

# Upload chunk read from a local file, bytes.
CHUNK_BYTES = 1024 * 1024
# How often the CLI looks at progress, seconds.
POLL_S = 0.2

if TYPE_CHECKING:
    from dramatiq.brokers.redis import RedisBroker

err = Console(stderr=True)


def _text(data: dict[str, Any]) -> str:
    return "\f".join(p["text"] for p in data["pages"])


def _json(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


# --format name -> (file suffix, writer of the document result JSON, or None: the file aggregation
# stored, fetched from storage, e.g. the searchable PDF).
FORMATS: dict[str, tuple[str, Callable[[dict[str, Any]], str] | None]] = {
    "text": ("txt", _text),
    "json": ("json", _json),
    **{name: (output.suffix, output.write) for name, output in OUTPUTS.items()},
}


@contextlib.contextmanager
def _runtime(settings: Settings, *, worker: bool, threads: int, llm: bool = False) -> Iterator[Settings]:
    """Embedded servers if needed, the broker, and optionally an in-process worker."""
    from pagemill.embedded import embedded_services
    from pipeline.logs import setup_logging

    setup_logging(level=settings.log_level if settings.log_level != "INFO" else "WARNING", fmt=settings.log_format)
    with embedded_services(settings) as live:
        from actors.broker import setup_broker

        broker = setup_broker(live)
        import actors.ocr

        if llm:  # the LLM actors (and the openai package: ~1.3 s of imports) only when asked for
            import actors.llm  # noqa: F401

        if not worker:
            yield live
            return
        from dramatiq import Worker

        # The default queue too when LLM steps were asked for (they run there).
        queues = {live.ocr_queue} | ({live.default_queue} if llm else set())
        # worker_timeout: how long an idle consumer waits on Redis per poll, ms; stop() waits for it.
        w = Worker(broker, worker_threads=threads, queues=queues, worker_timeout=100)
        w.start()
        try:
            yield live
        finally:
            w.stop(timeout=30_000)
            broker.close()


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as fh:
        while chunk := await asyncio.to_thread(fh.read, CHUNK_BYTES):
            yield chunk


async def _ocr_files(
    settings: Settings,
    files: list[Path],
    langs: tuple[str, ...],
    *,
    ocr_mode: str | None = None,
    stored: tuple[str, ...] = (),
    anki: Path | None = None,
) -> dict[Path, object]:
    from actors.ocr import ocr_document
    from pipeline import documents
    from pipeline.context import Context

    ctx = await Context.open(settings)
    outcomes: dict[Path, object] = {}
    try:
        submitted = []
        options: dict[str, object] = {"postprocess": ["flashcards"]} if anki else {}
        if ocr_mode is not None:
            options["ocr_mode"] = ocr_mode
        if stored:
            options["outputs"] = list(stored)
        for path in files:
            try:
                doc = await documents.ingest_upload(
                    ctx, _file_chunks(path), filename=path.name, lang_hints=list(langs),
                    options=options or None,
                )  # fmt: skip
            except PagemillError as exc:
                outcomes[path] = exc
                continue
            ocr_document.send(document_id=str(doc.id))
            submitted.append((path, doc.id))
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("pages"),
                   TimeElapsedColumn(), TimeRemainingColumn())
        with Progress(*columns, console=err, transient=False) as progress:
            tasks = {doc_id: progress.add_task(path.name, total=None) for path, doc_id in submitted}
            pending = dict(submitted)
            while pending:
                for path, doc_id in list(pending.items()):
                    doc = await ctx.store.get_document(doc_id)
                    progress.update(tasks[doc_id], total=doc.page_count, completed=doc.pages_finished)
                    if doc.status.is_final:
                        outcomes[path] = doc
                        del pending[path]
                await asyncio.sleep(POLL_S)
        for path, doc in outcomes.items():
            if isinstance(doc, PagemillError) or doc.result_key is None:  # type: ignore[attr-defined]
                continue
            data = json.loads(await ctx.storage.get_bytes(doc.result_key))  # type: ignore[attr-defined]
            keys = {name: documents.result_key(doc.id, FORMATS[name][0]) for name in stored}  # type: ignore[attr-defined]
            outcomes[path] = (doc, data, {name: await ctx.storage.get_bytes(key) for name, key in keys.items()})
        if anki is not None and not await _write_apkg(ctx, outcomes, anki):
            outcomes[anki] = PagemillError(f"{anki} was not written")
    finally:
        await ctx.aclose()
    return outcomes


async def _write_apkg(ctx: object, outcomes: dict[Path, object], target: Path) -> bool:
    """Write the flashcards of the (single) document as an Anki package; report why not otherwise."""
    from pipeline.llm.anki import document_apkg

    for path, outcome in outcomes.items():
        if not isinstance(outcome, tuple):
            continue
        doc = outcome[0]
        try:
            data = await document_apkg(ctx.store, doc)  # type: ignore[attr-defined]
        except PagemillError as exc:
            err.print(f"[red]{path}: no Anki deck: {doc.error or exc.reason}[/red]")
            return False
        await asyncio.to_thread(target.write_bytes, data)
        err.print(f"{path} flashcards -> {target}")
        return True
    return False


@click.group()
@click.version_option(package_name="pagemill")
def main() -> None:
    """pagemill: document OCR on Dramatiq, Redis, PostgreSQL and S3."""


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), help="Write <stem>.<format> here.")
@click.option(
    "--format", "fmts", type=click.Choice(list(FORMATS)), multiple=True,
    help="text (default), json, pdf (searchable), hocr, alto, md; repeat it for several (written to "
    "files, see --out; a PDF never overwrites its input: a.pdf -> a.ocr.pdf).",
)  # fmt: skip
@click.option("--lang", "langs", multiple=True, help="Language hint (repeatable), before PADDLEOCR_LANG.")
@click.option("--threads", default=2, show_default=True, help="Worker threads for the in-process worker.")
@click.option(
    "--ocr-mode", type=click.Choice(["auto", "force", "redo"]), default=None,
    help="auto: read PDF text layers, OCR the rest; force: OCR every page; redo: replace OCR layers "
    "[default: PAGEMILL_OCR_MODE, auto].",
)  # fmt: skip
@click.option(
    "--anki", type=click.Path(dir_okay=False, path_type=Path),
    help="Also make flashcards with the LLM (OPENAI_*) and write them to this Anki .apkg (one FILE).",
)  # fmt: skip
def ocr(
    files: tuple[Path, ...],
    out_dir: Path | None,
    fmts: tuple[str, ...],
    langs: tuple[str, ...],
    threads: int,
    ocr_mode: str | None,
    anki: Path | None,
) -> None:
    """OCR FILES (PDF, PNG, JPEG, TIFF, WebP) and print or write their text."""
    settings = Settings()
    if settings.ocr_threads == 0:
        # Worker threads x onnxruntime threads = the cores: each thread OCRs its own page, and
        # more OCR threads than cores only makes them wait on each other (measured on 2 cores,
        # 12 dense pages: 2.46 -> 2.25 CPU s/page with 1 onnxruntime thread per worker thread).
        settings = settings.model_copy(update={"ocr_threads": max(1, _cores() // max(1, threads))})
    if anki is not None:
        if len(files) != 1:
            raise click.UsageError(f"--anki writes one deck: give one FILE, not {len(files)}")
        if settings.openai_api_key is None:
            raise click.UsageError(
                "--anki needs an LLM for the flashcards: set OPENAI_API_KEY (and OPENAI_MODEL), or point "
                "OPENAI_BASE_URL at an OpenAI-compatible server and set OPENAI_API_KEY to any value it accepts"
            )
    with _runtime(settings, worker=True, threads=threads, llm=anki is not None) as live:
        stored = tuple(f for f in fmts if FORMATS[f][1] is None)  # made by aggregation, fetched
        outcomes = asyncio.run(_ocr_files(live, list(files), langs, ocr_mode=ocr_mode, stored=stored, anki=anki))
    failed = anki is not None and anki in outcomes  # the deck could not be made (reason printed)
    for path in files:
        outcome = outcomes.get(path)
        if isinstance(outcome, PagemillError):
            err.print(f"[red]{path}: {outcome.reason}[/red]")
            failed = True
            continue
        if not isinstance(outcome, tuple):
            doc = outcome
            err.print(f"[red]{path}: {getattr(doc, 'status', 'unknown')}: {getattr(doc, 'error', '')}[/red]")
            failed = True
            continue
        doc, data, stored_files = outcome
        if doc.status.value != "completed":
            err.print(f"[yellow]{path}: {doc.status.value}: {doc.error}[/yellow]")
            failed = True
        for fmt in fmts or ("text",):
            suffix, render = FORMATS[fmt]
            body = render(data).encode("utf-8") if render is not None else stored_files[fmt]
            if render is not None and out_dir is None and len(files) == 1 and len(fmts) <= 1:
                text = body.decode("utf-8")
                click.echo(text, nl=not text.endswith("\n"))
                continue
            target_dir = out_dir or Path.cwd()
            target_dir.mkdir(parents=True, exist_ok=True)
            target = target_dir / f"{path.stem}.{suffix}"
            if target.resolve() == path.resolve():  # never write over the input (a.pdf -> a.ocr.pdf)
                target = target_dir / f"{path.stem}.ocr.{suffix}"
            target.write_bytes(body)
            err.print(f"{path} -> {target}")
    sys.exit(1 if failed else 0)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@click.option("--ocr-processes", default=1, show_default=True, help="OCR worker processes (one per core at most).")
@click.option("--no-clock", is_flag=True, help="Do not run the periodic maintenance scheduler.")
def serve(host: str, port: int, ocr_processes: int, no_clock: bool) -> None:
    """Run the API, one worker per queue and the scheduler on this machine (embedded servers if none)."""
    from pagemill import serve as serving
    from pagemill.embedded import embedded_services

    settings = Settings()
    with embedded_services(settings) as live:
        types = serving.process_types(live, host=host, port=port, ocr_processes=ocr_processes, with_clock=not no_clock)
        err.print(f"pagemill on http://{host}:{port} (Ctrl-C stops everything)")
        code = serving.run(live, types, echo=err.print)
    sys.exit(code)


@main.command()
@click.argument("document_id")
def status(document_id: str) -> None:
    """Show a document's status, progress and errors."""
    from pagemill.embedded import embedded_services
    from pipeline.jobs import JobStore, PageStatus

    with embedded_services(Settings(), redis=False) as live:  # the job store only: no broker

        async def show() -> int:
            store = await JobStore.connect(live.database_url.get_secret_value(), schema=live.db_schema)  # type: ignore[union-attr]
            try:
                doc = await store.get_document(document_id)
                counts = await store.page_counts(doc.id)
                pages = await store.list_pages(doc.id)
            except PagemillError as exc:
                err.print(f"[red]{exc.reason}[/red]")
                return 1
            finally:
                await store.aclose()
            click.echo(f"{doc.id}  {doc.filename or ''}  {doc.status.value}")
            click.echo(f"pages: {doc.pages_finished}/{doc.page_count or '?'} finished  "
                       + "  ".join(f"{s.value}={n}" for s, n in counts.items() if n))
            for page in pages:
                if page.status is PageStatus.FAILED:
                    click.echo(f"  page {page.page_no}: {page.error}")
            if doc.error:
                click.echo(f"error: {doc.error}")
            return 0

        sys.exit(asyncio.run(show()))


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
    from pagemill.embedded import embedded_services
    from pipeline.jobs import JobStore
    from pipeline.logs import setup_logging
    from pipeline.search.query import SearchMode, SearchResults
    from pipeline.search.query import search as run_search

    settings = Settings()
    # Logs on stderr, warnings only unless asked for: stdout is the results (--json is piped).
    setup_logging(level=settings.log_level if settings.log_level != "INFO" else "WARNING", fmt=settings.log_format)
    with embedded_services(settings, redis=False) as live:  # the job store only: no broker

        async def find() -> SearchResults:
            from pipeline.llm.client import LlmClient

            store = await JobStore.connect(live.database_url.get_secret_value(), schema=live.db_schema)  # type: ignore[union-attr]
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
                await store.aclose()

        try:
            results = asyncio.run(find())
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
    from pagemill.embedded import embedded_services
    from pipeline.jobs import JobStore
    from pipeline.stats import DailySummary, stored_days

    with embedded_services(Settings(), redis=False) as live:  # the job store only: no broker

        async def read() -> list[DailySummary]:
            store = await JobStore.connect(live.database_url.get_secret_value(), schema=live.db_schema)  # type: ignore[union-attr]
            try:
                return await stored_days(store, days=days)
            finally:
                await store.aclose()

        summaries = asyncio.run(read())
    if not summaries:
        err.print("no daily summaries yet: the clock process (periodiq actors.maintenance) stores one at 00:05")
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
def doctor() -> None:
    """Check Redis, PostgreSQL, storage and the OCR engine; say how to fix what is missing."""
    from pagemill.doctor import run_checks

    try:
        settings = Settings()
    except ValueError as exc:  # a bad variable stops here, naming it
        err.print(f"[red]configuration: {exc}[/red]")
        sys.exit(1)
    checks = run_checks(settings)
    for check in checks:
        mark = "[green]ok[/green]  " if check.ok else "[red]FAIL[/red]"
        if check.warn:
            mark = "[yellow]warn[/yellow]"
        err.print(f"{mark} {check.name:<12} {check.detail}")
        if (check.warn or not check.ok) and check.fix:
            err.print(f"       fix: {check.fix}")
    sys.exit(0 if all(c.ok for c in checks) else 1)


@main.command("celery-bridge")
@click.option("--queues", default=None, help="Comma-separated Celery queues [default: CELERY_OCR_QUEUE,CELERY_DEFAULT_QUEUE].")
@click.option("--name", default="default", show_default=True, help="Stable, unique per running bridge: names its processing list.")
@click.option("--import", "modules", multiple=True, help="Extra module declaring actors (repeatable).")
def celery_bridge(queues: str | None, name: str, modules: tuple[str, ...]) -> None:
    """Run Celery producers' tasks on pagemill: Redis queue lists -> Dramatiq actors, Celery results."""
    from actors.celery import run_bridge

    names = [q.strip() for q in queues.split(",") if q.strip()] if queues else None
    run_bridge(Settings(), queues=names, name=name, modules=("actors.ocr", "actors.llm", *modules))


@main.command()
def migrate() -> None:
    """Apply the job store's schema migrations."""
    from pagemill.embedded import embedded_services
    from pipeline.jobs import JobStore

    with embedded_services(Settings(), redis=False) as live:  # the job store only: no broker
        assert live.database_url is not None

        async def run() -> int:
            dsn = live.database_url.get_secret_value()  # type: ignore[union-attr]
            store = await JobStore.connect(dsn, schema=live.db_schema, migrate=False)
            try:
                return await store.migrate()
            finally:
                await store.aclose()

        click.echo(f"schema {live.db_schema} at version {asyncio.run(run())}")


@main.group()
def dlq() -> None:
    """Dead letters: messages Dramatiq gave up on, with why; replay or purge them."""


@contextlib.contextmanager
def _dlq_broker() -> Iterator[RedisBroker]:
    with _runtime(Settings(), worker=False, threads=0, llm=True):  # every actor declared, as before
        from actors.broker import setup_broker

        yield setup_broker()


def _when(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


@dlq.command("list")
@click.option("--queue", default=None, help="Only this queue [default: every queue with dead letters].")
def dlq_list(queue: str | None) -> None:
    """List dead-lettered messages, oldest first, with the reason they failed."""
    from actors.deadletters import list_dead_letters

    with _dlq_broker() as broker:
        letters = list_dead_letters(broker, queue=queue)
    for letter in letters:
        click.echo(
            f"{letter.message_id}  {letter.queue}  {letter.actor_name}  {_when(letter.failed_at_ms)}  "
            f"retries={letter.retries}  {letter.reason}"
        )
    err.print(f"{len(letters)} dead letter(s)")


@dlq.command("show")
@click.argument("message_id")
def dlq_show(message_id: str) -> None:
    """Show one dead letter: its actor, arguments and full traceback."""
    from actors.deadletters import DeadLetterNotFoundError, get_dead_letter

    with _dlq_broker() as broker:
        try:
            letter = get_dead_letter(broker, message_id)
        except DeadLetterNotFoundError as exc:
            err.print(f"[red]{exc}[/red]")
            sys.exit(1)
    click.echo(
        f"message_id: {letter.message_id}\nredis_id:   {letter.redis_id}\nqueue:      {letter.queue}\n"
        f"actor:      {letter.actor_name}\nfailed_at:  {_when(letter.failed_at_ms)} UTC\n"
        f"retries:    {letter.retries}\nargs:       {json.dumps(list(letter.args), default=str)}\n"
        f"kwargs:     {json.dumps(letter.kwargs, default=str)}\nreason:     {letter.reason}"
    )
    if letter.traceback:
        click.echo("traceback:\n" + letter.traceback.rstrip())


@dlq.command("replay")
@click.argument("message_id", required=False)
@click.option("--all", "replay_every", is_flag=True, help="Replay every dead letter (of --queue if given).")
@click.option("--queue", default=None, help="With --all: only this queue.")
def dlq_replay(message_id: str | None, replay_every: bool, queue: str | None) -> None:
    """Send a dead letter (or --all) again on its queue with fresh retries; it leaves the DLQ."""
    from actors.deadletters import DeadLetterNotFoundError, replay_all, replay_dead_letter

    if bool(message_id) == replay_every:
        raise click.UsageError("give a MESSAGE_ID or --all, not both")
    with _dlq_broker() as broker:
        try:
            if replay_every:
                sent = replay_all(broker, queue=queue)
            else:
                sent = [replay_dead_letter(broker, message_id or "")]
        except DeadLetterNotFoundError as exc:
            err.print(f"[red]{exc}[/red]")
            sys.exit(1)
    for message in sent:
        click.echo(f"replayed {message.message_id}  {message.queue_name}  {message.actor_name}")
    err.print(f"{len(sent)} message(s) replayed")


@dlq.command("purge")
@click.option("--queue", default=None, help="Only this queue [default: every queue].")
@click.confirmation_option(prompt="Delete these dead letters for good?")
def dlq_purge(queue: str | None) -> None:
    """Delete dead letters for good."""
    from actors.deadletters import purge_dead_letters

    with _dlq_broker() as broker:
        count = purge_dead_letters(broker, queue=queue)
    click.echo(f"purged {count} dead letter(s)")


if __name__ == "__main__":
    main()
