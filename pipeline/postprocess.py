"""The post-processing steps a document can ask for, and how a list of them is read.

Upload field ``postprocess``, the CLI and ``PAGEMILL_POSTPROCESS`` all name steps from ``STEPS``;
they run after OCR, in the order of ``STEPS`` (``actors.postprocess``). ``none`` asks for no
step at all, overriding ``PAGEMILL_POSTPROCESS``.
"""

from __future__ import annotations

from collections.abc import Iterable

# Every step, in the order they run: the LLM products, then the search index.
STEPS = ("summary", "flashcards", "quiz", "diagnostics", "metadata", "embeddings")
# The value that asks for no step (an explicit empty list).
NONE = "none"


def parse_steps(value: str | Iterable[str]) -> tuple[str, ...]:
    """Step names from ``"a,b"`` or a list of such strings, without repeats; ValueError names an unknown one."""
    parts = [value] if isinstance(value, str) else list(value)
    steps: list[str] = []
    for item in (p.strip().lower() for part in parts for p in str(part).split(",")):
        if not item or item == NONE:
            continue
        if item not in STEPS:
            raise ValueError(f"unknown step {item[:40]!r}; choose from {', '.join(STEPS)} (or {NONE})")
        if item not in steps:
            steps.append(item)
    return tuple(steps)
