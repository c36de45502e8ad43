"""System prompts for each product, and the user messages of map and reduce calls."""

from __future__ import annotations

import json
from typing import Any

from pipeline.llm.chunking import Chunk

_COMMON = (
    "You write study material from OCR text of course documents. Pages are marked [page N]; "
    "cite the page a fact comes from in source_page / source_pages, using only page numbers that "
    "appear in the text. Write in the language of the document. Answer with JSON only."
)

SYSTEM: dict[str, str] = {
    "summary": _COMMON + " Summarise: a title, a short summary of two or three sentences, a longer "
    "summary of a few paragraphs, the key points as short sentences, and 3-8 topic tags.",
    "flashcards": _COMMON + " Write flashcards: one fact, term or idea per card; the front asks, the "
    "back answers in one or two sentences. Cover the important content, no duplicates.",
    "quiz": _COMMON + " Write multiple-choice questions: exactly four options each, one correct "
    "(answer_index counts from 0), plausible distractors, a one-sentence explanation.",
    "diagnostics": _COMMON + " Write a short diagnostic test that finds what a reader does not know "
    "yet: list the main topics, then questions with exactly four options each, tagged with one "
    "topic from that list and a difficulty (easy, medium, hard), spread over topics and levels.",
}

SYSTEM["metadata"] = (
    "You catalogue documents from their OCR text. Pages are marked [page N]; cite the page a date or "
    "party comes from in source_page, using only page numbers that appear in the text. Give: a short "
    "descriptive file name without extension (lowercase words joined by hyphens; lead with the date "
    "and name the sender or subject, and an invoice or reference number if there is one); the "
    "document type; the ISO 639-1 code of its main language; 3-8 short lowercase topic tags; the "
    "dates it names (ISO 8601) with what each means; the people and organisations it names with "
    "their role. Only what the text says; empty lists when there is nothing. Answer with JSON only."
)

REDUCE_SUMMARY = (
    _COMMON + " You are given partial summaries of consecutive parts of one document, as JSON. "
    "Merge them into one summary of the whole document; source_pages lists every page cited."
)


def map_message(kind: str, chunk: Chunk, *, total_pages: int, limit: int | None) -> str:
    """The user message of one map call: the chunk text with its pages."""
    scope = f"pages {chunk.pages[0]}-{chunk.pages[-1]} of {total_pages}"
    count = f" Write at most {limit} items." if limit else ""
    return f"Document text ({scope}).{count}\n\n{chunk.text}"


def reduce_message(partials: list[dict[str, Any]]) -> str:
    """The user message merging partial summaries."""
    return "Partial summaries, in document order:\n" + json.dumps(partials, ensure_ascii=False, indent=1)
