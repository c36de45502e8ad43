"""Map-reduce over chunks: one call per chunk, bounded concurrency, then one merged product.

Lists (flashcards, quiz and diagnostic questions) are concatenated in page order without
duplicates; summaries are merged by further calls, in groups that fit the context budget,
until one remains. Every item keeps the page it came from.
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from pipeline.llm import prompts
from pipeline.llm.chunking import Chunk, PageText, chunk_pages, estimate_tokens
from pipeline.llm.client import LlmClient, Usage
from pipeline.llm.errors import LlmAnswerError
from pipeline.llm.schemas import PRODUCTS, Diagnostics, Flashcards, Metadata, Quiz, Summary

# Items asked for per chunk (flashcards, questions).
ITEMS_PER_CHUNK = 12
# A metadata product keeps at most this many tags, and file names of at most this many characters.
MAX_TAGS = 12
MAX_FILENAME_CHARS = 80
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True, slots=True)
class Product:
    """One generated product: its JSON, the pages it covers and the tokens it took."""

    kind: str
    data: dict[str, Any]
    pages: tuple[int, ...]
    usage: Usage


def _page_check(chunk: Chunk) -> Any:
    allowed = set(chunk.pages)

    def check(value: BaseModel) -> None:
        cited: list[int] = []
        if isinstance(value, Summary):
            cited = value.source_pages
        for field in ("cards", "questions", "dates", "parties"):
            cited.extend(item.source_page for item in getattr(value, field, None) or [])
        wrong = sorted(set(cited) - allowed)
        if wrong:
            raise ValueError(f"source pages {wrong} are not in this text; use only pages {sorted(allowed)}")

    return check


async def _map(client: LlmClient, kind: str, chunks: Sequence[Chunk], total_pages: int) -> tuple[list[Any], Usage]:
    schema = PRODUCTS[kind]
    limit = None if kind in ("summary", "metadata") else ITEMS_PER_CHUNK
    # The client's semaphore bounds concurrency; gather keeps chunk order.
    results = await asyncio.gather(
        *(
            client.complete(
                schema,
                system=prompts.SYSTEM[kind],
                user=prompts.map_message(kind, chunk, total_pages=total_pages, limit=limit),
                check=_page_check(chunk),
            )
            for chunk in chunks
        )
    )
    usage = sum((r.usage for r in results), Usage())
    return [r.value for r in results], usage


async def _reduce_summaries(client: LlmClient, parts: list[Summary], budget_tokens: int) -> tuple[Summary, Usage]:
    usage = Usage()
    while len(parts) > 1:
        groups: list[list[Summary]] = [[]]
        for part in parts:
            size = sum(estimate_tokens(p.model_dump_json()) for p in groups[-1] + [part])
            if groups[-1] and size > budget_tokens:
                groups.append([])
            groups[-1].append(part)
        if len(groups) == len(parts):  # no two partial summaries fit together: keep their shape
            groups = [parts[i : i + 2] for i in range(0, len(parts), 2)]
        merged = []
        for group in groups:
            if len(group) == 1:
                merged.append(group[0])
                continue
            answer = await client.complete(
                Summary,
                system=prompts.REDUCE_SUMMARY,
                user=prompts.reduce_message([p.model_dump() for p in group]),
            )
            pages = sorted({n for p in group for n in p.source_pages})
            merged.append(answer.value.model_copy(update={"source_pages": pages}))
            usage += answer.usage
        parts = merged
    return parts[0], usage


def _unique(items: list[Any], key: str) -> list[Any]:
    seen: set[str] = set()
    out = []
    for item in items:
        text = " ".join(getattr(item, key).lower().split())
        if text not in seen:
            seen.add(text)
            out.append(item)
    return out


def safe_filename(name: str) -> str:
    """A suggested file name made safe: letters, digits, ``.``, ``_`` and ``-`` only, at most 80 characters."""
    cleaned = _UNSAFE_NAME.sub("-", unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode())
    cleaned = re.sub(r"-{2,}", "-", cleaned).strip(".-_")[:MAX_FILENAME_CHARS].rstrip(".-_")
    return cleaned or "document"


def _merge_metadata(parts: list[Metadata]) -> Metadata:
    """One document's metadata from its chunks': what it is comes from its start, lists from all of it."""
    first = parts[0]
    tags = list(dict.fromkeys(t.strip().lower() for p in parts for t in p.tags if t.strip()))[:MAX_TAGS]
    dates = _unique([d for p in parts for d in p.dates], "date")
    parties = _unique([x for p in parts for x in p.parties], "name")
    return first.model_copy(
        update={"filename_suggestion": safe_filename(first.filename_suggestion), "tags": tags,
                "dates": dates, "parties": parties, "language": first.language.strip().lower()}
    )  # fmt: skip


async def generate(
    client: LlmClient, kind: str, pages: Sequence[PageText], *, budget_tokens: int
) -> Product:
    """Generate product ``kind`` (summary, flashcards, quiz, diagnostics, metadata) from page texts."""
    if kind not in PRODUCTS:
        raise ValueError(f"unknown product {kind!r}; choose from {', '.join(PRODUCTS)}")
    chunks = chunk_pages(pages, budget_tokens=budget_tokens)
    if not chunks:
        raise LlmAnswerError("the document has no text to work from (OCR found none)")
    total = max(p.page_no for p in pages)
    values, usage = await _map(client, kind, chunks, total)
    result: BaseModel
    if kind == "summary":
        result, more = await _reduce_summaries(client, values, budget_tokens)
        usage += more
    elif kind == "flashcards":
        result = Flashcards(cards=_unique([c for v in values for c in v.cards], "front"))
    elif kind == "quiz":
        result = Quiz(questions=_unique([q for v in values for q in v.questions], "question"))
    elif kind == "metadata":
        result = _merge_metadata(values)
    else:
        topics = list(dict.fromkeys(t for v in values for t in v.topics))
        result = Diagnostics(topics=topics, questions=_unique([q for v in values for q in v.questions], "question"))
    covered = tuple(sorted({n for c in chunks for n in c.pages}))
    return Product(kind, result.model_dump(), covered, usage)
