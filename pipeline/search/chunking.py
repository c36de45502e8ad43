"""Cut a document's page texts into search chunks along reading order.

A chunk never spans two pages: it packs whole paragraphs (blank-line separated) of one page up
to ``max_chars``; a longer paragraph is cut at the last line break, else sentence end, else
space before the limit. Every chunk keeps its page number and its exact character span in that
page's text (``page_text[char_start:char_end] == chunk.text``), so a hit can be shown in place.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from pipeline.llm.chunking import PageText

_PARAGRAPH_BREAK = re.compile(r"\n[ \t\f\r]*\n\s*")
# Where a too-long paragraph may be cut, best first.
_CUT_POINTS = (re.compile(r"\n"), re.compile(r"[.!?;:]\s"), re.compile(r"\s"))


@dataclass(frozen=True, slots=True)
class TextChunk:
    """A piece of one page's text: its position in the document and in the page."""

    chunk_no: int
    page_no: int
    char_start: int
    char_end: int
    text: str


def _paragraphs(text: str) -> list[tuple[int, int]]:
    """Spans of the non-blank paragraphs of ``text``."""
    spans: list[tuple[int, int]] = []
    start = 0
    for brk in [*_PARAGRAPH_BREAK.finditer(text), None]:
        end = brk.start() if brk else len(text)
        piece = text[start:end]
        if piece.strip():
            lead = len(piece) - len(piece.lstrip())
            spans.append((start + lead, start + len(piece.rstrip())))
        if brk:
            start = brk.end()
    return spans


def _cut(text: str, start: int, end: int, max_chars: int) -> list[tuple[int, int]]:
    """Cut one span longer than ``max_chars`` into spans that fit."""
    out: list[tuple[int, int]] = []
    while end - start > max_chars:
        window = text[start : start + max_chars]
        cut = max_chars
        for pattern in _CUT_POINTS:
            found = [m.end() for m in pattern.finditer(window) if m.end() > max_chars // 3]
            if found:
                cut = found[-1]
                break
        piece = text[start : start + cut]
        lead = len(piece) - len(piece.lstrip())
        if piece.strip():
            out.append((start + lead, start + len(piece.rstrip())))
        start += cut
        while start < end and text[start].isspace():
            start += 1
    if start < end:
        out.append((start, end))
    return out


def cut_pages(pages: Iterable[PageText], *, max_chars: int) -> list[TextChunk]:
    """The chunks of these pages, numbered from 0 in page order."""
    if max_chars < 20:
        raise ValueError(f"max_chars={max_chars} is too small for a chunk")
    chunks: list[TextChunk] = []
    for page in sorted(pages, key=lambda p: p.page_no):
        text = page.text
        pieces = [s for a, b in _paragraphs(text) for s in _cut(text, a, b, max_chars)]
        group: tuple[int, int] | None = None
        for start, end in pieces:
            if group is not None and end - group[0] <= max_chars:
                group = (group[0], end)
                continue
            if group is not None:
                chunks.append(TextChunk(len(chunks), page.page_no, *group, text[group[0] : group[1]]))
            group = (start, end)
        if group is not None:
            chunks.append(TextChunk(len(chunks), page.page_no, *group, text[group[0] : group[1]]))
    return chunks
