"""``pagemill ocr FILE...``: files through the same actors the HTTP API uses, with an in-process worker.

Embedded Redis/PostgreSQL are started when none is configured. Each file ends as one ``Outcome``:
its document and result, or why there is none.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from pagemill.cli._app import err, main
from pipeline.errors import PagemillError
from pipeline.outputs.formats import OUTPUTS
from pipeline.settings import Settings

if TYPE_CHECKING:
    from pipeline.context import Context
    from pipeline.jobs import Document

# Upload chunk read from a local file, bytes.
CHUNK_BYTES = 1024 * 1024
# How often the CLI looks at progress, seconds.
POLL_S = 0.2


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


@dataclass(slots=True)
class Outcome:
    """One file's end: its document and result (``data``, plus stored ``files`` by format), or ``error``."""

    path: Path
    doc: Document | None = None
    data: dict[str, Any] | None = None
    files: dict[str, bytes] = field(default_factory=dict)
    error: str | None = None


async def _ocr_files(
    settings: Settings,
    files: list[Path],
    langs: tuple[str, ...],
    *,
    ocr_mode: str | None = None,
    stored: tuple[str, ...] = (),
    anki: Path | None = None,
) -> tuple[list[Outcome], str | None]:
    """Each file's outcome, in order, and why the Anki deck was not written (None: written or not asked)."""
    from actors.ocr import ocr_document
    from pipeline import documents, intake
    from pipeline.context import Context

    ctx = await Context.open(settings)
    outcomes = [Outcome(path) for path in files]
    deck_error = None
    try:
        options: dict[str, object] = {"postprocess": ["flashcards"]} if anki else {}
        if ocr_mode is not None:
            options["ocr_mode"] = ocr_mode
        if stored:
            options["outputs"] = list(stored)
        submitted: list[Outcome] = []
        for outcome in outcomes:
            try:
                outcome.doc = await intake.ingest_upload(
                    ctx, _file_chunks(outcome.path), filename=outcome.path.name, lang_hints=list(langs),
                    options=options or None,
                )  # fmt: skip
            except PagemillError as exc:
                outcome.error = exc.reason
                continue
            ocr_document.send(document_id=str(outcome.doc.id))
            submitted.append(outcome)
        await _follow(ctx, submitted)
        for outcome in submitted:
            doc = outcome.doc
            assert doc is not None
            if doc.result_key is None:
                outcome.error = f"{doc.status.value}: {doc.error or ''}"
                continue
            outcome.data = json.loads(await ctx.storage.get_bytes(doc.result_key))
            for name in stored:
                outcome.files[name] = await ctx.storage.get_bytes(documents.result_key(doc.id, FORMATS[name][0]))
        if anki is not None:
            deck_error = await _write_apkg(ctx, outcomes, anki)
    finally:
        await ctx.aclose()
    return outcomes, deck_error


async def _follow(ctx: Context, submitted: list[Outcome]) -> None:
    """Show each document's pages as they finish, until every one is final."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("pages"),
               TimeElapsedColumn(), TimeRemainingColumn())  # fmt: skip
    with Progress(*columns, console=err, transient=False) as progress:
        tasks = {id(o): progress.add_task(o.path.name, total=None) for o in submitted}
        pending = list(submitted)
        while pending:
            for outcome in list(pending):
                assert outcome.doc is not None
                outcome.doc = await ctx.store.get_document(outcome.doc.id)
                progress.update(tasks[id(outcome)], total=outcome.doc.page_count, completed=outcome.doc.pages_finished)
                if outcome.doc.status.is_final:
                    pending.remove(outcome)
            await asyncio.sleep(POLL_S)


async def _write_apkg(ctx: Context, outcomes: list[Outcome], target: Path) -> str | None:
    """Write the flashcards of the (single) document as an Anki package; why not, if it was not written."""
    from pipeline.llm.anki import document_apkg

    for outcome in outcomes:
        if outcome.doc is None or outcome.data is None:
            continue
        try:
            data = await document_apkg(ctx.store, outcome.doc)
        except PagemillError as exc:
            return f"{outcome.path}: no Anki deck: {outcome.doc.error or exc.reason}"
        await asyncio.to_thread(target.write_bytes, data)
        err.print(f"{outcome.path} flashcards -> {target}")
        return None
    return f"{target} was not written: no document finished"


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
        outcomes, deck_error = asyncio.run(
            _ocr_files(live, list(files), langs, ocr_mode=ocr_mode, stored=stored, anki=anki)
        )
    failed = deck_error is not None
    if deck_error is not None:
        err.print(f"[red]{deck_error}[/red]")
    for outcome in outcomes:
        if outcome.data is None:
            err.print(f"[red]{outcome.path}: {outcome.error}[/red]")
            failed = True
            continue
        assert outcome.doc is not None
        if outcome.doc.status.value != "completed":
            err.print(f"[yellow]{outcome.path}: {outcome.doc.status.value}: {outcome.doc.error}[/yellow]")
            failed = True
        _write_formats(outcome, fmts or ("text",), out_dir=out_dir, alone=len(files) == 1 and len(fmts) <= 1)
    sys.exit(1 if failed else 0)


def _write_formats(outcome: Outcome, fmts: tuple[str, ...], *, out_dir: Path | None, alone: bool) -> None:
    """Print the one text output of a lone file, else write ``<stem>.<suffix>`` files."""
    assert outcome.data is not None
    path = outcome.path
    for fmt in fmts:
        suffix, render = FORMATS[fmt]
        body = render(outcome.data).encode("utf-8") if render is not None else outcome.files[fmt]
        if render is not None and out_dir is None and alone:
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
