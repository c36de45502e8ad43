"""The cascade re-reads only the words its first reader was unsure of, and splices them in place."""

from __future__ import annotations

import numpy as np

from pipeline.ocr._ppocr import Reading
from pipeline.ocr.cascade import reread_unsure, unsure_pieces
from pipeline.ocr.onnx import OnnxEngine, bundled_model_dir
from pipeline.ocr.page import recognize_page
from pipeline.ocr.scoring import cer
from tests.pipeline.ocr.conftest import THREADS, load_scan, truth


def _reading(words: list[tuple[str, float]]) -> Reading:
    """A line of words, each character one tenth of the crop apart, spaces between words."""
    text = " ".join(w for w, _ in words)
    confidences = []
    for index, (word, confidence) in enumerate(words):
        confidences += [confidence] * len(word) + ([1.0] if index + 1 < len(words) else [])
    spans = tuple((i / len(text), (i + 0.8) / len(text)) for i in range(len(text)))
    return Reading(text, float(np.mean(confidences)), spans, tuple(confidences), 1 / len(text))


def test_only_the_unsure_words_are_cut_out_and_put_back_where_they_were() -> None:
    line = _reading([("Linzensoep", 0.99), ("a", 0.90), ("1a", 0.80), ("Waterman", 0.995)])
    (piece,) = unsure_pieces(line, 0.98)
    assert line.text[piece.first : piece.end] == "a 1a"
    assert 0.4 < piece.f0 < piece.f1 < 0.7  # cut half-way across the spaces around the run
    crop = np.zeros((20, 200, 3), dtype=np.uint8)
    seen: list[int] = []

    def read(crops: list[np.ndarray]) -> list[Reading]:
        seen.extend(c.shape[1] for c in crops)
        return [Reading("à la", 0.97, ((0.0, 0.2), (0.3, 0.5), (0.6, 0.8), (0.8, 1.0)), (0.97,) * 4, 0.1)]

    (mended,) = reread_unsure([crop], [line], read, 0.98)
    assert mended.text == "Linzensoep à la Waterman"
    assert seen == [int(np.ceil(piece.f1 * 200)) - int(piece.f0 * 200)]
    # The new characters sit inside the piece, in order; the sure words kept their places.
    new = mended.spans[len("Linzensoep ") : len("Linzensoep à la")]
    assert piece.f0 <= new[0][0] and new[-1][1] <= piece.f1
    assert mended.spans[-1] == line.spans[-1]
    assert len(mended.spans) == len(mended.text) == len(mended.char_confidences)


def test_a_sure_line_is_not_read_again_and_real_pages_read_as_well_as_before() -> None:
    engine = OnnxEngine(languages=("nl",), model_dir=bundled_model_dir(), profile="cascade", threads=THREADS, use_gpu=False)
    widths: list[int] = []
    assert engine._recheck is not None
    real_read = engine._recheck.read
    engine._recheck.read = lambda crops: widths.extend(c.shape[1] for c in crops) or real_read(crops)  # type: ignore[method-assign]
    page = load_scan("om_typewriter.png")[0]
    result = recognize_page(engine, page, min_confidence=0.5)
    # Words, not lines: the pieces read again are a small part of the page's text.
    line_widths = sum(int(np.linalg.norm(np.subtract(line.box[1], line.box[0]))) for line in result.lines)
    assert 0 < sum(widths) < 0.35 * line_widths
    assert cer(truth("om_typewriter.png")[0], result.text) < 0.01
    for line in result.lines:
        assert " ".join(w.text for w in line.words) == line.text
        lefts = [w.box[0] for w in line.words]
        assert lefts == sorted(lefts)
