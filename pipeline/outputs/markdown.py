"""Document result -> Markdown: headings, paragraphs and lists from line boxes, for LLMs and RAG.

Input is the document result (``aggregate_document(...).data``, stored as ``result.json``): per
page its size in pixels and its lines, in reading order, each with an axis-aligned-ish quad box.
Everything is read from geometry and text alone (fonts and bold are not known):

* Running headers, footers and page numbers are dropped first: lines in the top or bottom
  ``MARGIN_BAND`` of a page whose text, digits folded to ``#``, recurs on at least half of the
  pages (and on two at least), and lone folios there ("3", "- 3 -", "Page 3 of 10", "iv").
* Headings come from line height against the body's (character-weighted median) line height:
  ``H1_RATIO`` -> ``#``, ``H2_RATIO`` -> ``##``. A body-sized line that stands alone (short, no
  closing punctuation, a paragraph gap above, nearer to the long line below) becomes ``###``.
* Paragraphs: lines joined with spaces; a new one starts after a vertical gap clearly wider than
  the usual line gap, after a sentence that ends where the next line's first word would still
  have fitted, or where the left edge or column changes after a line that looks finished
  (closing punctuation, or short). A line-end hyphen before a lower-case letter is undone
  (``exam-`` + ``ple``); before a capital or digit it is kept (``Franco-`` + ``German``), and so
  is any hyphenated word the document also prints inside a line.
* Lines starting with a bullet (``• - * – ·``) or a number (``1.``, ``2)``) are list items; later
  lines of an item are joined to it. Lettered items (``a)``) become bullets keeping their letter.

Page convention: every page starts with the marker ``<!-- page N -->`` (an HTML comment, so it
renders as nothing, and splitters can cut on it and cite the page); a page without text says so
(``<!-- page N: failed -->``). Paragraphs never run across a page marker.

Only the start of a block is escaped (``#``, ``>``, ``-``/``+``/``*``, ``1.``, fences, rules,
``<``): emphasis characters inside text are left as they were printed. Tables, multi-column
headings, and paragraphs continued on the next page come out as plain paragraphs.
"""

from __future__ import annotations

import itertools
import math
import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

# Share of the page height at the top and at the bottom where running heads and folios sit.
MARGIN_BAND = 0.08
# A band line recurring on this share of the pages with text (and on MIN_REPEAT pages) is dropped.
REPEAT_SHARE = 0.5
MIN_REPEAT = 2
# Line height / body line height that makes a heading of level 1, 2.
H1_RATIO = 1.5
H2_RATIO = 1.25
# Longest heading, in words per line and lines per heading (a large-font paragraph is not one).
HEADING_MAX_WORDS = 15
HEADING_MAX_LINES = 3
# Line heights of extra vertical space, beyond the usual line gap, that start a new paragraph.
PARAGRAPH_GAP = 0.5
# Line heights the left edge may move without it counting as a new indent.
INDENT_TOLERANCE = 0.6
# A line narrower than this share of the median body line width is short.
SHORT_LINE = 0.6
# Line heights a line may stop short of its block's right edge and still be a full line.
FULL_LINE_SLACK = 2.0
# Usual gap between lines (line heights) when a document has too few lines to measure it.
DEFAULT_LINE_GAP = 0.3

_BULLET = re.compile(r"^(?:[•·▪●◦‣∙]\s*|[-*–]\s+)(?P<rest>\S.*)$")
_NUMBERED = re.compile(r"^\(?(?P<num>\d{1,3})[.)]\s+(?P<rest>\S.*)$")
_LETTERED = re.compile(r"^\(?(?P<letter>[a-zA-Z])\)\s+(?P<rest>\S.*)$")
_ROMAN = r"(?=[ivxlcdm])m{0,3}(?:cm|cd|d?c{0,3})(?:xc|xl|l?x{0,3})(?:ix|iv|v?i{0,3})"
_FOLIO = re.compile(
    rf"^(?:(?:page|p\.|pg\.?|seite|pagina|página)\s*)?[-–—]?\s*(?:\d{{1,4}}|{_ROMAN})\s*"
    r"(?:(?:of|/|von|de|sur)\s*\d{1,4})?\s*[-–—]?$",
    re.IGNORECASE,
)
# A letter, then a hyphen (or soft hyphen) ending the text: a word broken at the line end.
_BROKEN_WORD = re.compile(r"(?P<left>[^\W\d_]+)(?P<hyphen>[-\u00ad\u2010])$")
_FIRST_WORD = re.compile(r"^[^\W\d_]+")
_INLINE_HYPHENATED = re.compile(r"[^\W\d_]+-[^\W\d_]+")
_ENDS_SENTENCE = re.compile(r"[.!?:;…\"”’»)\]]$")
# Block starts Markdown would read as syntax: headings, quotes, list markers, rules, fences, HTML.
_SYNTAX_START = re.compile(r"^(?:#|>|[-+*](?:\s|$)|={2,}|_{3,}|`{3,}|~{3,}|<|\|)")
_NUMBER_START = re.compile(r"^(?P<num>\d+)(?P<delim>[.)])(?=\s|$)")

BlockKind = Literal["heading", "paragraph", "item"]


@dataclass(frozen=True, slots=True)
class _Line:
    text: str
    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def width(self) -> float:
        return self.x1 - self.x0


@dataclass(frozen=True, slots=True)
class _Metrics:
    """The document's body text: line height, usual gap between lines, line width (px)."""

    height: float
    gap: float
    width: float
    hyphenated: frozenset[str]  # words printed with a hyphen inside a line, lower-cased


@dataclass(slots=True)
class _Block:
    kind: BlockKind
    text: str
    lines: list[_Line]
    level: int = 0  # heading level
    marker: str = ""  # list item: "-" or "3."

    @property
    def left(self) -> float:
        return self.lines[0].x0

    @property
    def right(self) -> float:
        return max(line.x1 for line in self.lines)


@dataclass(frozen=True, slots=True)
class _Page:
    page_no: int
    status: str
    lines: list[_Line] = field(default_factory=list)


def to_markdown(result: dict[str, Any]) -> str:
    """The document result (``result.json``) as Markdown, one ``<!-- page N -->`` marker per page."""
    pages = [_read_page(page) for page in sorted(result.get("pages", []), key=lambda p: p["page_no"])]
    pages = _drop_running_lines(pages, result.get("pages", []))
    metrics = _measure([line for page in pages for line in page.lines])
    parts: list[str] = []
    for page in pages:
        if page.status != "done" and not page.lines:
            parts.append(f"<!-- page {page.page_no}: {page.status} -->")
            continue
        parts.append(f"<!-- page {page.page_no} -->")
        body = _render(_blocks(page.lines, metrics))
        if body:
            parts.append(body)
    return "\n\n".join(parts) + "\n" if parts else ""


# -- reading the result ------------------------------------------------------------------------


def _read_page(page: dict[str, Any]) -> _Page:
    lines = [_line(raw) for raw in page.get("lines") or []]
    return _Page(int(page["page_no"]), str(page.get("status", "done")), [ln for ln in lines if ln.text])


def _line(raw: dict[str, Any]) -> _Line:
    xs = [float(point[0]) for point in raw["box"]]
    ys = [float(point[1]) for point in raw["box"]]
    text = " ".join(str(raw.get("text", "")).split())
    return _Line(text, min(xs), min(ys), max(xs), max(ys))


# -- running headers, footers and page numbers --------------------------------------------------


def _drop_running_lines(pages: list[_Page], raw_pages: Sequence[dict[str, Any]]) -> list[_Page]:
    heights = {int(p["page_no"]): float(p.get("height") or 0) for p in raw_pages}
    banded = {page.page_no: _band_lines(page.lines, heights.get(page.page_no, 0.0)) for page in pages}
    running = _running_texts(banded.values(), sum(1 for page in pages if page.lines))
    out = []
    for page in pages:
        drop = {ln for ln in banded[page.page_no] if _normal(ln.text) in running or _FOLIO.match(ln.text)}
        out.append(_Page(page.page_no, page.status, [ln for ln in page.lines if ln not in drop]))
    return out


def _band_lines(lines: Sequence[_Line], page_height: float) -> list[_Line]:
    """Lines whose middle lies in the top or bottom band of the page."""
    if page_height <= 0:
        return []
    top, bottom = MARGIN_BAND * page_height, (1 - MARGIN_BAND) * page_height
    return [ln for ln in lines if not top <= (ln.y0 + ln.y1) / 2 <= bottom]


def _running_texts(banded: Iterable[list[_Line]], pages_with_text: int) -> set[str]:
    """Normalised band texts found on enough pages to be running headers or footers."""
    seen: dict[str, int] = {}
    for lines in banded:
        for key in {_normal(line.text) for line in lines}:
            seen[key] = seen.get(key, 0) + 1
    needed = max(MIN_REPEAT, math.ceil(REPEAT_SHARE * pages_with_text))
    return {key for key, count in seen.items() if count >= needed}


def _normal(text: str) -> str:
    return re.sub(r"\d+", "#", " ".join(text.lower().split()))


# -- document metrics ---------------------------------------------------------------------------


def _measure(lines: Sequence[_Line]) -> _Metrics:
    hyphenated = frozenset(m.group().lower() for ln in lines for m in _INLINE_HYPHENATED.finditer(ln.text))
    if not lines:
        return _Metrics(1.0, DEFAULT_LINE_GAP, 1.0, hyphenated)
    height = _weighted_median([(ln.height, len(ln.text)) for ln in lines])
    body = [ln for ln in lines if ln.height < H2_RATIO * height]
    gaps = [
        b.y0 - a.y1
        for a, b in itertools.pairwise(body)
        if b.y0 > a.y0 and b.y0 - a.y1 < height and min(a.x1, b.x1) > max(a.x0, b.x0)
    ]
    # The lower quartile: paragraph gaps must not count, however many one-line paragraphs there are.
    gap = statistics.quantiles(gaps, n=4)[0] if len(gaps) >= 2 else DEFAULT_LINE_GAP * height
    width = statistics.median(ln.width for ln in body) if body else 1.0
    return _Metrics(height, gap, width, hyphenated)


def _weighted_median(pairs: Sequence[tuple[float, int]]) -> float:
    ordered = sorted(pairs)
    half = sum(weight for _, weight in ordered) / 2
    running = 0
    for value, weight in ordered:
        running += weight
        if running >= half:
            return value
    return ordered[-1][0]


# -- blocks -------------------------------------------------------------------------------------


def _blocks(lines: Sequence[_Line], m: _Metrics) -> list[_Block]:
    blocks: list[_Block] = []
    for i, line in enumerate(lines):
        prev = lines[i - 1] if i else None
        nxt = lines[i + 1] if i + 1 < len(lines) else None
        level = _heading_level(line, prev, nxt, m)
        if blocks and prev is not None and _continues(blocks[-1], prev, line, level, m):
            blocks[-1].text = _join(blocks[-1].text, line.text, m.hyphenated)
            blocks[-1].lines.append(line)
        else:
            blocks.append(_start_block(line, level))
    return blocks


def _start_block(line: _Line, level: int) -> _Block:
    if level:
        return _Block("heading", line.text, [line], level=level)
    marker = _list_marker(line.text)
    if marker is not None:
        return _Block("item", marker[1], [line], marker=marker[0])
    return _Block("paragraph", line.text, [line])


def _heading_level(line: _Line, prev: _Line | None, nxt: _Line | None, m: _Metrics) -> int:
    """1 or 2 from the line's height, 3 for a body line standing alone, else 0."""
    if len(line.text.split()) > HEADING_MAX_WORDS or sum(ch.isalpha() for ch in line.text) < 2:
        return 0
    ratio = line.height / m.height
    if ratio >= H1_RATIO:
        return 1
    if ratio >= H2_RATIO:
        return 2
    return 3 if _stands_alone(line, prev, nxt, m) else 0


def _stands_alone(line: _Line, prev: _Line | None, nxt: _Line | None, m: _Metrics) -> bool:
    if prev is None or nxt is None or _list_marker(line.text) is not None:
        return False
    if _ENDS_SENTENCE.search(line.text) or line.text.endswith(",") or not line.text[0].isupper():
        return False
    above, below = line.y0 - prev.y1, nxt.y0 - line.y1
    return (
        line.width < SHORT_LINE * m.width
        and nxt.width >= SHORT_LINE * m.width
        and nxt.height < H2_RATIO * m.height
        and _paragraph_gap(above, m)
        and 0 <= below < above
    )


def _continues(block: _Block, prev: _Line, line: _Line, level: int, m: _Metrics) -> bool:
    """Whether ``line`` belongs to ``block`` (whose last line is ``prev``)."""
    gap = line.y0 - prev.y1
    if gap >= 0 and _paragraph_gap(gap, m):
        return False
    if block.kind == "heading" or level:
        return block.kind == "heading" and level == block.level and len(block.lines) < HEADING_MAX_LINES
    if _list_marker(line.text) is not None:
        return False
    tolerance = INDENT_TOLERANCE * m.height
    new_column = line.y0 < prev.y0 - tolerance or line.x0 > prev.x1
    if block.kind == "item":
        hanging = line.x0 > block.left + tolerance and not new_column
        return hanging or not _looks_finished(block, prev, m)
    if _hard_break(block, prev, line):
        return False
    moved = new_column or abs(line.x0 - prev.x0) > tolerance
    if not moved:
        return True
    first_line_indent = len(block.lines) == 1 and line.x0 < prev.x0 and not new_column
    return first_line_indent or not _looks_finished(block, prev, m)


def _paragraph_gap(gap: float, m: _Metrics) -> bool:
    return gap > m.gap + PARAGRAPH_GAP * m.height


def _looks_finished(block: _Block, prev: _Line, m: _Metrics) -> bool:
    """The block's last line ends a sentence or stops short of the block's right edge."""
    short = prev.x1 < block.right - FULL_LINE_SLACK * m.height
    return short or bool(_ENDS_SENTENCE.search(prev.text))


def _hard_break(block: _Block, prev: _Line, line: _Line) -> bool:
    """A sentence ends ``prev`` where the next line's first word would still have fitted.

    Paragraphs set without space or indent between them show only this.
    """
    if not _ENDS_SENTENCE.search(prev.text):
        return False
    char_width = line.width / max(len(line.text), 1)
    first_word = len(line.text.split(maxsplit=1)[0]) + 1  # with the space before it
    return block.right - prev.x1 > first_word * char_width


def _list_marker(text: str) -> tuple[str, str] | None:
    """(Markdown marker, item text) when ``text`` starts a list item."""
    if match := _BULLET.match(text):
        return "-", match["rest"]
    if match := _NUMBERED.match(text):
        return f"{int(match['num'])}.", match["rest"]
    if match := _LETTERED.match(text):
        return "-", f"{match['letter']}) {match['rest']}"
    return None


def _join(text: str, more: str, hyphenated: frozenset[str]) -> str:
    """``text`` and the next line's ``more``: a word broken by a hyphen is mended."""
    broken = _BROKEN_WORD.search(text)
    if broken is None:
        return f"{text} {more}"
    if broken["hyphen"] == "\u00ad":  # a soft hyphen is only ever a break
        return text[:-1] + more
    following = _FIRST_WORD.match(more)
    keep = (
        following is None
        or not more[0].islower()
        or f"{broken['left']}-{following.group()}".lower() in hyphenated
    )
    return text + more if keep else text[:-1] + more


# -- rendering ----------------------------------------------------------------------------------


def _render(blocks: Sequence[_Block]) -> str:
    out: list[str] = []
    for i, block in enumerate(blocks):
        if i:
            out.append("\n" if _same_list(blocks[i - 1], block) else "\n\n")
        out.append(_block_text(block))
    return "".join(out)


def _block_text(block: _Block) -> str:
    if block.kind == "heading":
        return f"{'#' * block.level} {block.text}"
    if block.kind == "item":
        return f"{block.marker} {_escape(block.text)}"
    return _escape(block.text)


def _same_list(a: _Block, b: _Block) -> bool:
    return a.kind == b.kind == "item" and (a.marker == "-") == (b.marker == "-")


def _escape(text: str) -> str:
    """A backslash where the start of ``text`` would otherwise be read as Markdown syntax."""
    if number := _NUMBER_START.match(text):
        return f"{number['num']}\\{text[len(number['num']) :]}"
    if _SYNTAX_START.match(text):
        return "\\" + text
    return text
