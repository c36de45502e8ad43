"""Split page texts into chunks that fit a context budget, keeping source page numbers.

Tokens are estimated as characters / 4 (OpenAI's rule of thumb for English): no tokenizer,
so nothing is downloaded at run time. Each page is marked ``[page N]`` in the chunk text so
the model can cite it; a page longer than the budget is cut at line breaks into parts that
all keep its number.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

# Characters per token, the estimate used everywhere in pipeline.llm.
CHARS_PER_TOKEN = 4


@dataclass(frozen=True, slots=True)
class PageText:
    """The OCR text of one page."""

    page_no: int
    text: str


@dataclass(frozen=True, slots=True)
class Chunk:
    """Consecutive pages (or parts of one page) sent in one call."""

    pages: tuple[int, ...]
    text: str

    @property
    def tokens(self) -> int:
        """Estimated tokens of the chunk text."""
        return estimate_tokens(self.text)


def estimate_tokens(text: str) -> int:
    """Estimated tokens of ``text`` (characters / 4, rounded up)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def _marked(page_no: int, text: str) -> str:
    return f"[page {page_no}]\n{text.strip()}\n"


def _split_page(page: PageText, max_chars: int) -> list[str]:
    """Cut one page's text at line breaks (or hard, for a very long line) into parts <= max_chars."""
    parts: list[str] = []
    current = ""
    for line in page.text.splitlines():
        while len(line) > max_chars:
            if current:
                parts.append(current)
                current = ""
            parts.append(line[:max_chars])
            line = line[max_chars:]
        if current and len(current) + len(line) + 1 > max_chars:
            parts.append(current)
            current = ""
        current = f"{current}\n{line}" if current else line
    if current:
        parts.append(current)
    return parts


def chunk_pages(pages: Iterable[PageText], *, budget_tokens: int) -> list[Chunk]:
    """Greedy page packing: each chunk's estimated tokens stay within ``budget_tokens``."""
    if budget_tokens < 16:
        raise ValueError(f"budget_tokens={budget_tokens} is too small for any page")
    max_chars = budget_tokens * CHARS_PER_TOKEN
    chunks: list[Chunk] = []
    numbers: list[int] = []
    text = ""

    def flush() -> None:
        nonlocal numbers, text
        if text:
            chunks.append(Chunk(tuple(numbers), text))
        numbers, text = [], ""

    for page in sorted(pages, key=lambda p: p.page_no):
        if not page.text.strip():
            continue
        marked = _marked(page.page_no, page.text)
        if len(marked) > max_chars:
            flush()
            header = len(_marked(page.page_no, ""))
            for part in _split_page(page, max_chars - header):
                chunks.append(Chunk((page.page_no,), _marked(page.page_no, part)))
            continue
        if len(text) + len(marked) > max_chars:
            flush()
        numbers.append(page.page_no)
        text += marked
    flush()
    return chunks
