"""Anki export: a flashcards artifact as a ``.apkg`` package (genanki), importable by Anki.

Ids are stable, so importing the same document twice updates its deck instead of adding a
second one: the deck id and each note's GUID derive from the document id (and the card's
position and front), the note type id from a fixed name, so every pagemill deck shares one
"pagemill flashcard" note type instead of adding one per document to the user's collection.
Anki fields hold HTML, so card text is escaped; line breaks become ``<br>``.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import io
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import genanki

from pipeline.artifacts import get_artifact
from pipeline.jobs import Document, JobStore

# Anki ids are 64-bit, but genanki's docs pick them from [2**30, 2**31): stay in that range.
ID_BASE, ID_SPAN = 1 << 30, 1 << 30
MODEL_NAME = "pagemill flashcard"
FIELDS = ("Front", "Back", "Page")
TAGS = ("pagemill",)
_CSS = ".card { font-family: sans-serif; font-size: 20px; text-align: left; } .page { color: #888; font-size: 14px; }"


def stable_id(*parts: str) -> int:
    """A deterministic Anki id in genanki's recommended range."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return ID_BASE + int.from_bytes(digest[:8], "big") % ID_SPAN


MODEL = genanki.Model(
    stable_id("pagemill", "model", "v1"),
    MODEL_NAME,
    fields=[{"name": name} for name in FIELDS],
    templates=[
        {
            "name": "Card 1",
            "qfmt": "{{Front}}",
            "afmt": '{{FrontSide}}<hr id="answer">{{Back}}<div class="page">page {{Page}}</div>',
        }
    ],
    css=_CSS,
)


def to_html(text: str) -> str:
    """Plain card text as an Anki field: HTML-escaped, line breaks kept."""
    return html.escape(text.strip()).replace("\n", "<br>")


def note_fields(card: Mapping[str, Any]) -> list[str]:
    """The Anki fields (Front, Back, Page) of one flashcard from the artifact."""
    return [to_html(str(card["front"])), to_html(str(card["back"])), str(int(card["source_page"]))]


def build_apkg(document_id: uuid.UUID, cards: Sequence[Mapping[str, Any]], *, title: str | None = None) -> bytes:
    """The ``.apkg`` bytes of a deck named after ``title`` (or the document id)."""
    name = f"pagemill::{title.strip()}" if title and title.strip() else f"pagemill::{document_id}"
    deck = genanki.Deck(stable_id("pagemill", "deck", str(document_id)), name)
    for n, card in enumerate(cards):
        fields = note_fields(card)
        guid = genanki.guid_for(str(document_id), n, fields[0])
        deck.add_note(genanki.Note(model=MODEL, fields=fields, guid=guid, tags=list(TAGS)))
    out = io.BytesIO()
    genanki.Package(deck).write_to_file(out)
    return out.getvalue()


async def document_apkg(store: JobStore, doc: Document) -> bytes:
    """The ``.apkg`` of a document's flashcards artifact (NotFoundError when it has none)."""
    artifact = await get_artifact(store, doc.id, "flashcards")
    cards = artifact.data["flashcards"]["cards"]
    title = Path(doc.filename).stem if doc.filename else None
    return await asyncio.to_thread(build_apkg, doc.id, cards, title=title)
