"""Text of a layer page: pdfium's runs split into words, ligatures spelt out, line-end hyphens joined."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence

from pipeline.ocr.base import Box, Line, Word
from pipeline.ocr.layout import bounds

# Ligature code points pdfium passes through from ToUnicode maps become their letters (people search
# for "fi"); NUL, BOM and pdfium's U+FFFE hyphen mark are dropped.
_CLEAN = str.maketrans(
    {
        **{cp: unicodedata.normalize("NFKC", chr(cp)) for cp in range(0xFB00, 0xFB07)},
        0: None,
        0xFEFF: None,
        0xFFFE: None,
    }
)
_WORD = re.compile(r"\S+")
_SPACES = re.compile(r"\s+")
# Characters _CLEAN changes or pdfium's hyphen mark: a run holding one is cleaned word by word.
_SPECIAL = re.compile("[\x00\ufeff\ufffe\ufb00-\ufb06]")


def _runs(text: str) -> Iterable[tuple[int, int]]:
    """(start, end) index ranges of pdfium's lines (it ends each with generated CR LF)."""
    start = 0
    for i, ch in enumerate(text):
        if ch in "\r\n\u2029":
            if i > start:
                yield start, i
            start = i + 1
    if start < len(text):
        yield start, len(text)


def _words(text: str, start: int, end: int) -> Iterable[tuple[int, int, str]]:
    """(first index, last index whose box counts, text) of each word in ``text[start:end]``.

    pdfium marks a hyphen that breaks a word at a line end with U+FFFE and joins the halves
    (``com\ufffepile``); like pdftotext we keep the joined word, boxed on its first line.
    """
    for match in _WORD.finditer(text, start, end):
        i, j = match.span()
        word = match.group()
        cut = word.find("\ufffe")
        last = j - 1 if cut < 0 else max(i, i + cut - 1)
        cleaned = (_line_end_hyphens(word) if cut >= 0 else word).translate(_CLEAN)
        if cleaned:
            yield i, last, cleaned


def _line_end_hyphens(word: str) -> str:
    """pdfium's line-end hyphen marks (U+FFFE) dropped, except before a capital or a digit.

    There the hyphen is part of the word (Franco-German, COVID-19), not a break pdfium saw.
    """
    out = []
    for i, ch in enumerate(word):
        if ch != "\ufffe":
            out.append(ch)
        elif i + 1 < len(word) and (word[i + 1].isupper() or word[i + 1].isdigit()):
            out.append("-")
    return "".join(out)


def _line(words: Sequence[tuple[str, tuple[float, float, float, float]]], *, with_words: bool = False) -> Line:
    x0 = min(w[1][0] for w in words)
    y0 = min(w[1][1] for w in words)
    x1 = max(w[1][2] for w in words)
    y1 = max(w[1][3] for w in words)
    box: Box = ((x0, y0), (x1, y0), (x1, y1), (x0, y1))
    boxed = tuple(Word(text, 1.0, word_box) for text, word_box in words) if with_words else ()
    return Line(text=" ".join(w[0] for w in words), confidence=1.0, box=box, words=boxed)


def _text_cover(lines: Sequence[Line], width: int, height: int) -> float:
    if not lines or width <= 0 or height <= 0:
        return 0.0
    rects = bounds(lines)
    area = float(((rects[:, 2] - rects[:, 0]) * (rects[:, 3] - rects[:, 1])).sum())
    return float(min(1.0, area / (width * height)))
