"""Running and checking pagemill: ``serve``, ``doctor``, ``celery-bridge``."""

from __future__ import annotations

import sys

import click

from pagemill.cli._app import err, main
from pipeline.settings import Settings


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
