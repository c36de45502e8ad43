"""The cascade's second reading: only the words the first reader was unsure of are read again.

Re-reading whole unsure lines with the bigger recogniser re-read ~45 % of the text (in crop
columns) and took ~60 % of a dense page's OCR time. Tiny rec's doubts sit in a few words of a
line: cutting those out (runs of neighbouring unsure words as one piece, cut half-way across
the spaces around them) re-reads ~19 % of the columns, for the same pooled CER on the fixtures
(0.0264 both; benchmarks/results/ENGINE_NOTES.md, "word re-reads").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from pipeline.ocr._ppocr import Reading


class Piece(NamedTuple):
    """A run of unsure words: characters ``first:end`` of the reading, crop fractions f0..f1."""

    first: int
    end: int
    f0: float
    f1: float


def unsure_pieces(reading: Reading, below: float) -> list[Piece] | None:
    """The runs of words read at a mean confidence below ``below``; None when words are unknown."""
    matches = list(re.finditer(r"\S+", reading.text))
    if not matches or len(reading.spans) != len(reading.text):
        return None
    edges = [(reading.spans[m.start()][0], reading.spans[m.end() - 1][1]) for m in matches]
    unsure = [float(np.mean(reading.char_confidences[m.start() : m.end()])) < below for m in matches]
    pieces: list[Piece] = []
    n = 0
    while n < len(matches):
        if not unsure[n]:
            n += 1
            continue
        first = n
        while n + 1 < len(matches) and unsure[n + 1]:
            n += 1
        f0 = 0.0 if first == 0 else (edges[first - 1][1] + edges[first][0]) / 2
        f1 = 1.0 if n == len(matches) - 1 else (edges[n][1] + edges[n + 1][0]) / 2
        pieces.append(Piece(matches[first].start(), matches[n].end(), f0, f1))
        n += 1
    return pieces


def _splice(reading: Reading, pieces: Sequence[tuple[Piece, Reading]]) -> Reading:
    """``reading`` with each piece's characters replaced by its new reading (spans mapped back)."""
    text, spans, confidences = reading.text, list(reading.spans), list(reading.char_confidences)
    for piece, again in sorted(pieces, key=lambda item: -item[0].first):  # right to left: indices hold
        new = again.text.strip()
        lead = len(again.text) - len(again.text.lstrip())
        width = piece.f1 - piece.f0
        text = text[: piece.first] + new + text[piece.end :]
        spans[piece.first : piece.end] = [
            (piece.f0 + a * width, piece.f0 + b * width) for a, b in again.spans[lead : lead + len(new)]
        ]
        confidences[piece.first : piece.end] = again.char_confidences[lead : lead + len(new)]
    confidence = float(np.mean(confidences)) if confidences else 0.0
    return Reading(text, confidence, tuple(spans), tuple(confidences), reading.step)


def reread_unsure(
    crops: Sequence[np.ndarray],
    readings: list[Reading],
    read: Callable[[list[np.ndarray]], list[Reading]],
    below: float,
) -> list[Reading]:
    """The readings with every line under ``below`` mended: its unsure words read again by ``read``.

    A line whose words are unknown (no character positions) is read again whole.
    """
    jobs: list[tuple[int, Piece | None]] = []
    pieces: list[np.ndarray] = []
    for index, reading in enumerate(readings):
        if reading.confidence >= below:
            continue
        found = unsure_pieces(reading, below)
        if found is None:
            jobs.append((index, None))
            pieces.append(crops[index])
            continue
        width = crops[index].shape[1]
        for cut in found:
            x0 = int(cut.f0 * width)
            x1 = max(int(np.ceil(cut.f1 * width)), x0 + 1)
            jobs.append((index, cut))
            pieces.append(crops[index][:, x0:x1])
    out = list(readings)
    mended: dict[int, list[tuple[Piece, Reading]]] = {}
    for (index, piece), again in zip(jobs, read(pieces) if pieces else [], strict=True):
        if piece is None:
            out[index] = again  # the better reader's text replaces the first (ENGINE_NOTES.md)
        else:
            mended.setdefault(index, []).append((piece, again))
    for index, items in mended.items():
        out[index] = _splice(readings[index], items)
    return out
