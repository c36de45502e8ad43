"""Word boxes of a page in ``result.json``, as the hOCR and ALTO writers place them.

A line carries its ``words`` when the engine or the PDF's text layer knew where each word is;
otherwise its words are spread over the line's box by character count. Boxes become whole pixels
(outward), stay on the page, and a line's box grows to hold all its words, so a reader that checks
that a word lies inside its line (hOCR and ALTO viewers do) never finds one outside.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# Characters XML 1.0 forbids (C0 controls but tab and newlines, lone surrogates, U+FFFE/U+FFFF):
# one of them in a text makes the whole document unreadable, so they are dropped.
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

# (x0, y0, x1, y1) in whole page pixels, x1 >= x0 and y1 >= y0.
Bbox = tuple[int, int, int, int]


@dataclass(frozen=True, slots=True)
class Word:
    """One placed word: its text, box in whole page pixels and confidence (0..1)."""

    text: str
    x0: int
    y0: int
    x1: int
    y1: int
    confidence: float

    @property
    def bbox(self) -> Bbox:
        """The box as (x0, y0, x1, y1)."""
        return self.x0, self.y0, self.x1, self.y1


@dataclass(frozen=True, slots=True)
class PlacedLine:
    """One line with at least one word; its box holds every word's box."""

    bbox: Bbox
    confidence: float
    words: tuple[Word, ...]


def xml_safe(text: str) -> str:
    """``text`` without the characters XML 1.0 cannot hold."""
    return _NOT_XML.sub("", text)


def page_size(page: dict[str, Any]) -> tuple[int, int] | None:
    """The page's (width, height) in pixels, None when unknown (a page that failed early)."""
    width, height = page.get("width"), page.get("height")
    if isinstance(width, int | float) and isinstance(height, int | float) and width > 0 and height > 0:
        return round(width), round(height)
    return None


def page_lines(page: dict[str, Any]) -> list[PlacedLine]:
    """The page's lines that hold a word, in reading order, with their words placed."""
    size = page_size(page)
    out = []
    for line in page.get("lines") or ():
        words = line_words(line, size=size)
        if words:
            line_box = _line_bbox(line)
            box = union([w.bbox for w in words] + ([_clamp(line_box, size)] if line_box else []))
            out.append(PlacedLine(box, _confidence(line.get("confidence")), tuple(words)))
    return out


def line_words(line: dict[str, Any], *, size: tuple[int, int] | None = None) -> list[Word]:
    """The line's words: its ``words`` as given, else (none usable) its box split by character count.

    ``size`` (page width, height) keeps every box on the page.
    """
    given = [word for raw in line.get("words") or () if (word := _given_word(raw, line, size)) is not None]
    if given:
        return given
    # Split the whole line, then cut at the page: words keep their place on a line that overhangs.
    bbox = _line_bbox(line)
    if bbox is None:
        return []
    texts = xml_safe(str(line.get("text") or "")).split()
    words = _split(texts, bbox, _confidence(line.get("confidence")))
    return [Word(w.text, *_clamp(w.bbox, size), w.confidence) for w in words]


def _given_word(raw: dict[str, Any], line: dict[str, Any], size: tuple[int, int] | None) -> Word | None:
    text = xml_safe(str(raw.get("text") or "")).strip()
    box = raw.get("box")
    if not text or not box or len(box) != 4:
        return None
    x0, y0, x1, y1 = _clamp(_outward(box), size)
    confidence = raw.get("confidence", line.get("confidence"))
    return Word(text, x0, y0, x1, y1, _confidence(confidence))


def _split(texts: Sequence[str], bbox: Bbox, confidence: float) -> list[Word]:
    # Each word gets a share of the width by its length; each space between words counts one.
    x0, y0, x1, y1 = bbox
    total = sum(len(t) for t in texts) + len(texts) - 1
    per_char = (x1 - x0) / max(total, 1)
    words, offset = [], 0
    for text in texts:
        start, end = x0 + round(offset * per_char), x0 + round((offset + len(text)) * per_char)
        words.append(Word(text, start, y0, max(end, start), y1, confidence))
        offset += len(text) + 1
    return words


def _line_bbox(line: dict[str, Any]) -> Bbox | None:
    points = line.get("box")
    if not points:
        return None
    xs = [float(p[0]) for p in points]
    ys = [float(p[1]) for p in points]
    return _outward((min(xs), min(ys), max(xs), max(ys)))


def _outward(box: Sequence[float]) -> Bbox:
    x0, y0, x1, y1 = (float(v) for v in box)
    return math.floor(min(x0, x1)), math.floor(min(y0, y1)), math.ceil(max(x0, x1)), math.ceil(max(y0, y1))


def _clamp(bbox: Bbox, size: tuple[int, int] | None) -> Bbox:
    if size is None:
        x0, y0, x1, y1 = (max(v, 0) for v in bbox)
        return x0, y0, x1, y1
    width, height = size
    x0, x1 = (min(max(v, 0), width) for v in (bbox[0], bbox[2]))
    y0, y1 = (min(max(v, 0), height) for v in (bbox[1], bbox[3]))
    return x0, y0, x1, y1


def union(boxes: Sequence[Bbox]) -> Bbox:
    """The smallest box holding all ``boxes`` (at least one)."""
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def _confidence(value: object) -> float:
    if not isinstance(value, int | float) or math.isnan(value):
        return 0.0
    return min(max(float(value), 0.0), 1.0)
