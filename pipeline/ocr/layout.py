"""Reading order from line boxes: columns and zones first, then top to bottom within them.

Breuel's partial order on text lines (T. M. Breuel, "High performance document layout analysis",
2003; also OCRopus ``reading_order``): line *a* comes before line *b* when

* they share some horizontal extent and *a* is higher up (same column), or
* *a* lies wholly left of *b* and no third line sits between them vertically while crossing the
  gap between them (a full-width heading or a caption across the gutter *separates* them).

A topological sort that always takes the left-most ready line turns the partial order into a
sequence: a column is finished before the next one starts, a heading spanning both columns
comes before either, and lines the rules leave unordered go left to right. Sorting by ``y``
across the whole page instead interleaves columns (CER 75% on the UNLV magazine page).
Afterwards, consecutive fragments of one printed line are merged into one ``Line``.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

import numpy as np

from pipeline.ocr.base import Line

OVERLAP = 0.2  # fraction of a line height two boxes must share horizontally to be in one column
SAME_ROW = 0.5  # fraction of the lower box height two boxes must share vertically to be one row
MERGE_GAP = 1.0  # line heights: wider gaps between same-row fragments stay separate lines
FOOTER_GAP = 1.5  # line heights of empty space above a bottom band for it to be a page footer
FOOTER_MAX_LINES = 3  # lines a footer band may hold
GUTTER_MIN = 0.3  # line heights: narrowest vertical gap between columns
GUTTER_COVERAGE = 0.2  # a gutter's line coverage, relative to the columns beside it
FLOAT_MAX_WIDTH = 0.6  # a caption across a gutter is narrower than this share of both columns


def bounds(lines: Sequence[Line]) -> np.ndarray:
    """Axis-aligned (x0, y0, x1, y1) of each line's box, shape (n, 4)."""
    if not lines:
        return np.zeros((0, 4), dtype=np.float64)
    pts = np.array([line.box for line in lines], dtype=np.float64)  # (n, 4 corners, 2)
    return np.concatenate([pts.min(axis=1), pts.max(axis=1)], axis=1)


def precedence(rects: np.ndarray) -> np.ndarray:
    """``before[i, j]`` is True when line i must be read before line j."""
    x0, y0, x1, y1 = (rects[:, k] for k in range(4))
    height = y1 - y0
    tol = OVERLAP * np.minimum.outer(height, height)
    x_overlap = np.minimum.outer(x1, x1) - np.maximum.outer(x0, x0) > tol
    centre = (y0 + y1) / 2
    above = centre[:, None] < centre[None, :]
    left_of = x1[:, None] <= x0[None, :] + tol
    left_of &= ~x_overlap
    # separated[i, j]: some line w overlaps the vertical span of i and j and crosses the gap i..j.
    separated = np.zeros_like(left_of)
    lo_y = np.minimum.outer(y0, y0)
    hi_y = np.maximum.outer(y1, y1)
    for i in np.flatnonzero(left_of.any(axis=1)):
        js = np.flatnonzero(left_of[i])
        in_span = (y1[:, None] > lo_y[i, js][None, :]) & (y0[:, None] < hi_y[i, js][None, :])
        crosses = (x0[:, None] < x1[i]) & (x1[:, None] > x0[js][None, :])
        separated[i, js] = (in_span & crosses).any(axis=0)
    before = (x_overlap & above) | (left_of & ~separated)
    np.fill_diagonal(before, False)
    return np.asarray(before, dtype=bool)


def order(rects: np.ndarray) -> list[int]:
    """Indices of ``rects`` in reading order (left-most ready line first; cycles broken by position)."""
    n = len(rects)
    if n == 0:
        return []
    before = precedence(rects)
    pending = before.sum(axis=0).astype(np.int64)  # predecessors not yet emitted
    key = [(float(rects[i, 0]), float(rects[i, 1]), i) for i in range(n)]
    ready = [key[i] for i in range(n) if pending[i] == 0]
    heapq.heapify(ready)
    done = np.zeros(n, dtype=bool)
    out: list[int] = []
    while len(out) < n:
        if not ready:
            # A cycle (boxes that overlap oddly): release the top-most, left-most waiting line.
            waiting = np.flatnonzero(~done)
            pick = int(waiting[np.lexsort((rects[waiting, 0], rects[waiting, 1]))[0]])
            pending[pick] = 0
            ready = [key[pick]]
        _, _, i = heapq.heappop(ready)
        if done[i]:
            continue
        done[i] = True
        out.append(i)
        for j in np.flatnonzero(before[i] & ~done):
            pending[j] -= 1
            if pending[j] == 0:
                heapq.heappush(ready, key[j])
    return out


def merge_fragments(lines: Sequence[Line]) -> list[Line]:
    """Join pieces of one printed line the detector split: same row, close, not across a gutter.

    This must happen before ordering: a right-hand piece would otherwise be read after the
    next (shorter) line, which lies wholly left of it. Plain floats, not numpy, in the pair
    loop: a dense text-layer page has a few hundred lines, and numpy's per-call cost made this
    the slowest step of reading a born-digital page (250 ms).
    """
    column_gaps = gutters(bounds(lines))
    merged: list[Line] = []
    rects: list[_Rect] = []
    for line in sorted(lines, key=lambda ln: min(x for x, _ in ln.box)):
        rect = _rect(line)
        for k, row in enumerate(rects):
            if _same_row(row, rect, column_gaps):
                rects[k] = _union(row, rect)
                merged[k] = _join(merged[k], line, rects[k])
                break
        else:
            merged.append(line)
            rects.append(rect)
    return merged


def reading_order(lines: Sequence[Line]) -> tuple[Line, ...]:
    """``lines`` in reading order, fragments of one printed line merged.

    Body text first (Breuel order), then floats (captions set across a column gutter), then
    the page footer: both would otherwise cut into the columns they sit beside.
    """
    lines = merge_fragments(lines)
    rects = bounds(lines)
    footer = footer_lines(rects)
    floats = float_lines(rects, exclude=footer)
    body = [i for i in range(len(lines)) if i not in footer and i not in floats]
    sequence: list[int] = []
    for group in (body, sorted(floats), sorted(footer)):
        sequence += [group[k] for k in order(rects[group])]
    return tuple(lines[i] for i in sequence)


def footer_lines(rects: np.ndarray) -> set[int]:
    """The bottom band of lines when a clear gap sets it apart from everything above."""
    if len(rects) < 3:
        return set()
    gap = FOOTER_GAP * float(np.median(rects[:, 3] - rects[:, 1]))
    by_top = np.argsort(rects[:, 1])[::-1]
    for k in range(1, min(FOOTER_MAX_LINES, len(rects) - 1) + 1):
        band, rest = by_top[:k], by_top[k:]
        if rects[band, 1].min() >= rects[rest, 3].max() + gap:
            return {int(i) for i in band}
    return set()


def float_lines(rects: np.ndarray, *, exclude: set[int] = frozenset()) -> set[int]:  # type: ignore[assignment]
    """Narrow lines laid across a column gutter with column text above and below them (captions)."""
    keep = np.array([i for i in range(len(rects)) if i not in exclude], dtype=np.int64)
    if len(keep) < 3:
        return set()
    r = rects[keep]
    x0, y0, x1, y1 = (r[:, k] for k in range(4))
    floats: set[int] = set()
    for g0, g1 in gutters(r):
        spanning = (x0 < g0) & (x1 > g1)
        column_left, column_right = (x1 <= g0) & (x0 < g0), (x0 >= g1) & (x1 > g1)
        if not column_left.any() or not column_right.any():
            continue
        full = x1[column_right].max() - x0[column_left].min()
        for i in np.flatnonzero(spanning & (x1 - x0 < FLOAT_MAX_WIDTH * full)):
            above = y1 <= y0[i]
            below = y0 >= y1[i]
            if all((side & above).any() and (side & below).any() for side in (column_left, column_right)):
                floats.add(int(keep[i]))
    return floats


def gutters(rects: np.ndarray) -> list[tuple[float, float]]:
    """x intervals between columns: line coverage (summed heights) drops below a fraction of usual."""
    if len(rects) < 3:
        return []
    x0, x1, heights = rects[:, 0], rects[:, 2], rects[:, 3] - rects[:, 1]
    left, right = int(np.floor(x0.min())), int(np.ceil(x1.max()))
    coverage = np.zeros(right - left + 2, dtype=np.float64)
    # Difference array: +h where a line starts, -h after it ends, then a running sum.
    np.add.at(coverage, (x0 - left).astype(np.int64), heights)
    np.add.at(coverage, (x1 - left).astype(np.int64) + 1, -heights)
    coverage = np.cumsum(coverage)[:-1]
    height = float(np.median(heights))
    reach = int(3 * height)
    found: list[tuple[float, float]] = []
    for a, b in _low_runs(coverage, min_width=GUTTER_MIN * height):
        # A gutter has columns, i.e. at least two stacked lines, on both sides.
        if min(coverage[max(0, a - reach) : a].max(), coverage[b + 1 : b + 1 + reach].max()) >= 2 * height:
            found.append((a + left, b + left))
    return found


def _low_runs(coverage: np.ndarray, *, min_width: float) -> list[tuple[int, int]]:
    """Index intervals where coverage is low, at least ``min_width`` long, not at the edges."""
    typical = float(np.percentile(coverage[coverage > 0], 75)) if (coverage > 0).any() else 0.0
    low = coverage <= GUTTER_COVERAGE * typical
    out: list[tuple[int, int]] = []
    start = None
    for x, is_low in enumerate(low):
        if is_low and start is None:
            start = x
        elif not is_low and start is not None:
            if x - start >= min_width and start > 0:
                out.append((start, x - 1))
            start = None
    return out


_Rect = tuple[float, float, float, float]


def _rect(line: Line) -> _Rect:
    xs = [x for x, _ in line.box]
    ys = [y for _, y in line.box]
    return min(xs), min(ys), max(xs), max(ys)


def _union(a: _Rect, b: _Rect) -> _Rect:
    return min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])


def _same_row(a: _Rect, b: _Rect, column_gaps: list[tuple[float, float]]) -> bool:
    _ax0, ay0, ax1, ay1 = a
    bx0, by0, _bx1, by1 = b
    height = min(ay1 - ay0, by1 - by0)
    shared = min(ay1, by1) - max(ay0, by0)
    gap = bx0 - ax1
    if not (shared >= SAME_ROW * height and -0.5 * height <= gap <= MERGE_GAP * height):
        return False
    return not any(g0 < bx0 and g1 > ax1 for g0, g1 in column_gaps)


def _join(a: Line, b: Line, rect: _Rect) -> Line:
    left, top, right, bottom = (float(v) for v in rect)
    box = ((left, top), (right, top), (right, bottom), (left, bottom))
    weight_a, weight_b = max(len(a.text), 1), max(len(b.text), 1)
    confidence = (a.confidence * weight_a + b.confidence * weight_b) / (weight_a + weight_b)
    # Words only when both halves have them: a half without would leave words missing.
    words = a.words + b.words if a.words and b.words else ()
    return Line(text=f"{a.text} {b.text}", confidence=confidence, box=box, words=words)
