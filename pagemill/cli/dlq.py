"""``pagemill dlq``: dead letters, the messages Dramatiq gave up on; list, show, replay, purge."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

import click

from pagemill.cli._app import err, main
from pagemill.cli.ocr import _runtime
from pipeline.settings import Settings

if TYPE_CHECKING:
    from dramatiq.brokers.redis import RedisBroker


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
