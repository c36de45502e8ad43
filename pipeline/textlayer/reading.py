"""Reading text layers with pdfium: each page's kind, and its text as lines with boxes (one opening per file).

Per-character pdfium calls cost ~2 µs each through ctypes, so only what is needed is asked:
the text in one call, boxes at word edges, render mode and mapping errors on a sample.
Filled form fields live in widget appearance streams that pdfium's text page does not see until
the page is flattened (``FPDFPage_Flatten``), which is done in memory only.
"""

from __future__ import annotations

import ctypes
import dataclasses
import itertools
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from pipeline import pdf
from pipeline.ocr.base import Line
from pipeline.textlayer.model import LayerKind, PageLayer
from pipeline.textlayer.text import _SPACES, _SPECIAL, _line, _runs, _text_cover, _words
from pipeline.thumbnails import THUMBNAIL_MAX_SIDE, thumbnail_png

# Characters sampled per page for render mode and mapping checks (evenly spaced).
SAMPLE_CHARS = 400
# Share of sampled characters that makes a layer garbage / invisible.
GARBAGE_SHARE = 0.3
INVISIBLE_SHARE = 0.5
# A page "mostly image": images cover this share of it while visible text boxes cover less than
# TEXT_COVER_MAX (a scan with a stamped header, not a slide on a background picture).
IMAGE_COVER_MIN = 0.7
TEXT_COVER_MAX = 0.03
# Images covering less than this share of a page do not make a text-less page a scan.
IMAGE_ONLY_MIN = 0.1
# A horizontal gap wider than this many line heights splits a line (two columns on one baseline).
SPLIT_GAP = 2.0
# Render modes that draw nothing (PDF 32000 table 106): 3 invisible, 7 add to clipping path only.
INVISIBLE_MODES = frozenset({pdfium_c.FPDF_TEXTRENDERMODE_INVISIBLE, pdfium_c.FPDF_TEXTRENDERMODE_CLIP})


def analyze_pdf(
    path: Path,
    *,
    dpi: int,
    page_numbers: Iterable[int] | None = None,
    thumbnails: bool = False,
    words: bool = False,
) -> list[PageLayer]:
    """The text layer of each page (all, or ``page_numbers``), from one opening of the file.

    With ``thumbnails`` each page also gets its PNG preview, rendered straight at thumbnail
    size (a text-layer page is never rendered at OCR resolution). With ``words`` each line
    carries its words and their boxes (for hOCR and ALTO; ~2 ms more per dense page).
    """
    with pdf.open_pdf(path) as document:
        count = len(document)
        numbers = list(range(1, count + 1)) if page_numbers is None else list(page_numbers)
        has_forms = pdfium_c.FPDF_GetFormType(document.raw) != pdfium_c.FORMTYPE_NONE
        if has_forms:
            document.init_forms()
        meta = _producer(document)
        return [
            _analyze_page(
                document, n, dpi=dpi, flatten=has_forms, producer=meta, thumbnail=thumbnails, words=words
            )
            for n in numbers
        ]


def _producer(document: pdfium.PdfDocument) -> str:
    try:
        meta = document.get_metadata_dict()
    except pdfium.PdfiumError:
        return ""
    names = [meta.get(k, "").strip() for k in ("Producer", "Creator")]
    return " / ".join(n for n in names if n)[:120]


def _analyze_page(
    document: pdfium.PdfDocument,
    page_no: int,
    *,
    dpi: int,
    flatten: bool,
    producer: str,
    thumbnail: bool,
    words: bool,
) -> PageLayer:
    page = pdf.load_page(document, page_no)
    try:
        # Field values are drawn by widget annotations; flattening puts them in the content.
        # pdfium requires the page to be loaded again afterwards.
        if (
            flatten
            and pdfium_c.FPDFPage_GetAnnotCount(page.raw) > 0
            and page.flatten(flag=pdfium_c.FLAT_NORMALDISPLAY) == pdfium_c.FLATTEN_SUCCESS
        ):
            page.close()
            page = document[page_no - 1]
        started = time.perf_counter()
        layer = _read_page(page, page_no, dpi=dpi, producer=producer, words=words)
        if thumbnail:
            layer = dataclasses.replace(layer, thumbnail=_thumbnail(page))
        layer.stats["ms"] = round((time.perf_counter() - started) * 1000, 2)
        return layer
    finally:
        page.close()


def _thumbnail(page: pdfium.PdfPage) -> bytes:
    scale = THUMBNAIL_MAX_SIDE / max(page.get_width(), page.get_height(), 1.0)
    bitmap = page.render(scale=scale, rev_byteorder=True, may_draw_forms=True)
    try:
        pixels = np.ascontiguousarray(bitmap.to_numpy(), dtype=np.uint8).copy()
    finally:
        bitmap.close()
    return thumbnail_png(pixels)


class _Frame:
    """PDF user space -> pixels of the page rendered at ``dpi``, as displayed (``/Rotate``)."""

    def __init__(self, page: pdfium.PdfPage, dpi: int) -> None:
        left, bottom, right, top = page.get_cropbox()
        self.left, self.top = left, top
        self.w, self.h = right - left, top - bottom
        self.rotation = page.get_rotation() % 360
        self.scale = dpi / pdf.PDF_POINTS_PER_INCH
        width, height = (self.h, self.w) if self.rotation in (90, 270) else (self.w, self.h)
        self.size = pdf.pdf_pixel_size(width, height, dpi)

    def rect(self, l: float, b: float, r: float, t: float) -> tuple[float, float, float, float]:
        """An axis-aligned PDF rectangle as (x0, y0, x1, y1) in displayed pixels."""
        (ax, ay), (bx, by) = self._point(l, t), self._point(r, b)
        return min(ax, bx), min(ay, by), max(ax, bx), max(ay, by)

    def _point(self, x: float, y: float) -> tuple[float, float]:
        u, v = x - self.left, self.top - y  # unrotated, origin top-left, y down
        if self.rotation == 90:
            u, v = self.h - v, u
        elif self.rotation == 180:
            u, v = self.w - u, self.h - v
        elif self.rotation == 270:
            u, v = v, self.w - u
        return u * self.scale, v * self.scale


def _read_page(page: pdfium.PdfPage, page_no: int, *, dpi: int, producer: str, words: bool) -> PageLayer:
    frame = _Frame(page, dpi)
    width, height = frame.size
    textpage = page.get_textpage()
    try:
        count = textpage.count_chars()
        text = textpage.get_text_range() if count else ""
        if len(text) != count:  # surrogate pairs: one character per index, the slow way
            text = "".join(chr(pdfium_c.FPDFText_GetUnicode(textpage.raw, i) or 0xFFFD) for i in range(count))
        chars = len(_SPACES.sub("", text))
        sample = _sample(text)
        invisible = sum(_is_invisible(textpage, i) for i in sample)
        unmapped = sum(pdfium_c.FPDFText_HasUnicodeMapError(textpage.raw, i) == 1 for i in sample)
        lines = (
            _lines(textpage, text, frame, check_visibility=invisible > 0, with_words=words)
            if invisible < len(sample)
            else []
        )
    finally:
        textpage.close()
    image_cover = _image_cover(page)
    stats: dict[str, float] = {"chars": float(chars), "image_cover": round(image_cover, 3)}
    if not sample:
        if image_cover >= IMAGE_ONLY_MIN:
            return PageLayer(page_no, LayerKind.IMAGE_ONLY, "no text layer: the page is a scanned image", width, height,
                             stats=stats)  # fmt: skip
        return PageLayer(page_no, LayerKind.NO_TEXT, "no text layer", width, height, stats=stats)
    garbage = _garbage_reason([text[i] for i in sample], unmapped)
    if garbage:
        return PageLayer(page_no, LayerKind.GARBAGE_LAYER, garbage, width, height, stats=stats)
    if invisible >= INVISIBLE_SHARE * len(sample):
        by = f" (made by {producer})" if producer else ""
        reason = f"invisible text layer over an image{by}: an OCR layer of unknown quality"
        return PageLayer(page_no, LayerKind.OCR_LAYER, reason, width, height, tuple(lines), stats)
    text_cover = _text_cover(lines, width, height)
    stats["text_cover"] = round(text_cover, 4)
    if image_cover >= IMAGE_COVER_MIN and text_cover < TEXT_COVER_MAX:
        reason = (
            f"mostly image ({image_cover:.0%} of the page) with little real text "
            f"({text_cover:.1%} of the page)"
        )
        return PageLayer(page_no, LayerKind.MOSTLY_IMAGE, reason, width, height, tuple(lines), stats)
    return PageLayer(page_no, LayerKind.TEXT_LAYER, "real text layer", width, height, tuple(lines), stats)


def _sample(text: str) -> list[int]:
    """Indices of up to SAMPLE_CHARS non-space characters of ``text``, evenly spread over it."""
    step = max(1, len(text) // SAMPLE_CHARS)
    return [i for i in range(0, len(text), step) if not text[i].isspace()][:SAMPLE_CHARS]


def _is_invisible(textpage: pdfium.PdfTextPage, index: int) -> bool:
    obj = pdfium_c.FPDFText_GetTextObject(textpage.raw, index)
    return bool(obj) and pdfium_c.FPDFTextObj_GetTextRenderMode(obj) in INVISIBLE_MODES


def _garbage_reason(chars: Sequence[str], unmapped: int) -> str | None:
    """Why sampled characters are junk, or None when they look like text."""
    n = len(chars)
    if unmapped >= GARBAGE_SHARE * n:
        return (
            f"text layer is garbage: {unmapped} of {n} sampled characters have no Unicode mapping in "
            "their font (extraction gives glyph numbers, not letters)"
        )
    unusable = sum(_unusable(ch) for ch in chars)
    if unusable >= GARBAGE_SHARE * n:
        return (
            f"text layer is garbage: {unusable} of {n} sampled characters are private-use, "
            "replacement or control characters"
        )
    # A ToUnicode map written in the wrong byte order: 'M' (U+004D) comes out as U+4D00. Real
    # text has such code points (U+4E00 一) about once in 256 characters, not in every other.
    swapped = sum(ord(ch) >= 0x100 and ord(ch) & 0xFF == 0 for ch in chars)
    if swapped >= GARBAGE_SHARE * n:
        return (
            f"text layer is garbage: {swapped} of {n} sampled characters look byte-swapped "
            "(the font's Unicode map has the wrong byte order)"
        )
    return None


def _unusable(ch: str) -> bool:
    cp = ord(ch)
    return (
        ch == "\ufffd"
        or 0xE000 <= cp <= 0xF8FF
        or cp >= 0xF0000
        or (cp < 0x20 and ch not in "\t\r\n\f")
        or ch == "\x00"
    )


def _lines(
    textpage: pdfium.PdfTextPage, text: str, frame: _Frame, *, check_visibility: bool, with_words: bool
) -> list[Line]:
    """Visible text as lines: pdfium's line breaks, split again at wide gaps, boxes from word edges."""
    out: list[Line] = []
    rect = pdfium_c.FS_RECTF()
    raw = textpage.raw

    def box(first: int, last: int) -> tuple[float, float, float, float]:
        pdfium_c.FPDFText_GetLooseCharBox(raw, first, rect)
        left, right, bottom, top = rect.left, rect.right, rect.bottom, rect.top
        if last != first:
            pdfium_c.FPDFText_GetLooseCharBox(raw, last, rect)
            left, right = min(left, rect.left), max(right, rect.right)
            bottom, top = min(bottom, rect.bottom), max(top, rect.top)
        return frame.rect(left, bottom, right, top)

    left, top, right, bottom = (ctypes.c_double() for _ in range(4))

    def segments(start: int, end: int) -> list[tuple[float, float, float, float]]:
        # pdfium's rectangles for a text range: one per text object it crosses, in text order.
        found = []
        for i in range(pdfium_c.FPDFText_CountRects(raw, start, end - start)):
            pdfium_c.FPDFText_GetRect(raw, i, left, top, right, bottom)
            found.append(frame.rect(left.value, bottom.value, right.value, top.value))
        return found

    for start, end in _runs(text):
        if not check_visibility and not with_words:
            # Fast path, most lines: no gap between pdfium's segments wide enough to be a gutter,
            # so the run is one line boxed by its segments and end characters (no box per word).
            fast = _whole_line(text, start, end, segments(start, end), box)
            if fast is not None:
                out.append(fast)
                continue
        words: list[tuple[str, tuple[float, float, float, float]]] = []
        for first, last, word in _words(text, start, end):
            if check_visibility and _is_invisible(textpage, first):
                continue
            words.append((word, box(first, last)))
        if not words:
            continue
        height = max(b[3] - b[1] for _, b in words)
        current = [words[0]]
        for entry in words[1:]:
            gap = entry[1][0] - current[-1][1][2]
            if gap > SPLIT_GAP * height or gap < -height:  # a column gutter, or back to a new line
                out.append(_line(current, with_words=with_words))
                current = []
            current.append(entry)
        out.append(_line(current, with_words=with_words))
    return out


def _whole_line(
    text: str,
    start: int,
    end: int,
    segments: Sequence[tuple[float, float, float, float]],
    box: Callable[[int, int], tuple[float, float, float, float]],
) -> Line | None:
    """The run as one line when no gap between its segments splits it, else None."""
    run = text[start:end]
    if _SPECIAL.search(run):  # ligatures, line-end hyphens, NULs: cleaned word by word
        words = list(_words(text, start, end))
        if not words:
            return None
        line_text, first_char, last_char = " ".join(w[2] for w in words), words[0][0], words[-1][1]
    else:
        line_text = " ".join(run.split())
        first_char, last_char = start + len(run) - len(run.lstrip()), start + len(run.rstrip()) - 1
    if not line_text or not segments:
        return None
    first, last = box(first_char, first_char), box(last_char, last_char)
    height = max(first[3] - first[1], last[3] - last[1], *(s[3] - s[1] for s in segments))
    for a, b in itertools.pairwise(segments):
        gap = b[0] - a[2]
        if gap > SPLIT_GAP * height or gap < -height:
            return None
    edges = [first, last, *segments]
    x0, y0 = min(e[0] for e in edges), min(e[1] for e in edges)
    x1, y1 = max(e[2] for e in edges), max(e[3] for e in edges)
    return Line(text=line_text, confidence=1.0, box=((x0, y0), (x1, y0), (x1, y1), (x0, y1)))


def _image_cover(page: pdfium.PdfPage) -> float:
    """Share of the page's area under images (their bounding boxes, clipped to the page, summed)."""
    left, bottom, right, top = page.get_cropbox()
    area = max((right - left) * (top - bottom), 1e-6)
    covered = 0.0
    for obj in page.get_objects(filter=(pdfium_c.FPDF_PAGEOBJ_IMAGE,), max_depth=4):
        l, b, r, t = obj.get_bounds()
        w = min(r, right) - max(l, left)
        h = min(t, top) - max(b, bottom)
        if w > 0 and h > 0:
            covered += w * h
    return float(min(1.0, covered / area))
