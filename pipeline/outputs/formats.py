"""The document outputs besides text and JSON, by the name clients ask for them with.

``outputs=pdf,hocr,alto,md`` at upload (or the Celery kwarg ``outputs``, or PAGEMILL_OUTPUTS)
makes aggregation also write ``documents/<id>/result.<suffix>``: the text formats from the
document's result JSON, the searchable PDF from the source and the page layers the workers made
(``pipeline.pdf_output``). Adding a text format is one entry in ``OUTPUTS``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any


def _hocr(result: dict[str, Any]) -> str:
    from pipeline.outputs.hocr import to_hocr

    return to_hocr(result)


def _alto(result: dict[str, Any]) -> str:
    from pipeline.outputs.alto import to_alto

    return to_alto(result)


def _markdown(result: dict[str, Any]) -> str:
    from pipeline.outputs.markdown import to_markdown

    return to_markdown(result)


@dataclass(frozen=True, slots=True)
class Output:
    """One output format: its storage suffix (``result.<suffix>``), media type and writer."""

    name: str
    suffix: str
    media_type: str
    write: Callable[[dict[str, Any]], str] | None  # None: not made from the JSON (the searchable PDF)
    words: bool = False  # places each word: PDF text layers are then read with word boxes
    layers: bool = False  # OCR workers make each page's text layer for it


OUTPUTS: dict[str, Output] = {
    "pdf": Output("pdf", "pdf", "application/pdf", None, layers=True),
    "hocr": Output("hocr", "hocr", "text/html; charset=utf-8", _hocr, words=True),
    "alto": Output("alto", "alto.xml", "application/xml; charset=utf-8", _alto, words=True),
    "md": Output("md", "md", "text/markdown; charset=utf-8", _markdown),
}


def parse_outputs(value: str | Iterable[object] | None) -> tuple[str, ...]:
    """Output names from a comma list or a list, duplicates dropped, order kept.

    ``text`` and ``json`` are accepted and dropped (always made). ValueError names an unknown one.
    """
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    names: list[str] = []
    for item in (i.strip().lower() for i in items):
        if not item or item in ("text", "txt", "json"):
            continue
        if item not in OUTPUTS:
            raise ValueError(
                f"unknown output {item[:40]!r}; choose from {', '.join(OUTPUTS)} (text and json are always made)"
            )
        if item not in names:
            names.append(item)
    return tuple(names)
