"""The Tesseract engine: ``tesseract`` words grouped into lines with boxes and 0..1 confidences."""

from __future__ import annotations

import csv
import io
import time

from pipeline.errors import EngineUnavailableError
from pipeline.ocr import _tesseract_exec
from pipeline.ocr.base import Image, Line, PageResult, Word
from pipeline.ocr.languages import resolve_all
from pipeline.ocr.orientation import Orientation
from pipeline.settings import Settings

OSD_MIN_CONFIDENCE = 5.0  # tesseract's own scale; our rotated test pages score 9-11, upright 10-25
WORD_LEVEL = "5"  # TSV 'level' column value of a word row


class TesseractEngine:
    """Tesseract 4/5 (LSTM) through its command line; one subprocess per page, so thread-safe."""

    name = "tesseract"

    def __init__(self, *, languages: tuple[str, ...], threads: int = 1) -> None:
        resolved = resolve_all(languages)
        installed = _tesseract_exec.languages()
        missing = [language.tesseract for language in resolved if language.tesseract not in installed]
        if missing:
            packs = " ".join(f"tesseract-ocr-{code.replace('_', '-').lower()}" for code in missing)
            raise EngineUnavailableError(
                f"tesseract has no traineddata for {', '.join(missing)}: apt-get install {packs} "
                f"(installed: {', '.join(sorted(installed)) or 'none'})"
            )
        self.languages = tuple(language.code for language in resolved)
        self._langs = "+".join(language.tesseract for language in resolved)
        self._threads = threads
        self._osd = "osd" in installed

    @classmethod
    def from_settings(cls, settings: Settings, languages: tuple[str, ...]) -> TesseractEngine:
        """One OpenMP thread per page unless PAGEMILL_OCR_THREADS says otherwise."""
        return cls(languages=languages, threads=settings.ocr_threads or 1)

    def recognize(self, image: Image) -> PageResult:
        """Run tesseract (automatic page segmentation) and group its words into lines."""
        started = time.perf_counter()
        lines = parse_tsv(_tesseract_exec.tsv(image, self._langs, threads=self._threads))
        height, width = image.shape[:2]
        return PageResult(
            lines=lines, width=width, height=height, timings={"recognize": time.perf_counter() - started}
        )

    def detect_orientation(self, image: Image) -> Orientation:
        """Tesseract's OSD; skew is left to tesseract's own line finding."""
        if not self._osd:
            return Orientation()
        rotation, confidence = _tesseract_exec.osd(image)
        if confidence < OSD_MIN_CONFIDENCE:
            return Orientation()
        return Orientation(rotation=rotation, confidence=min(1.0, confidence / 20.0))


def parse_tsv(text: str) -> tuple[Line, ...]:
    """Lines from tesseract TSV: words joined by spaces, mean word confidence, union box."""
    groups: dict[tuple[str, str, str, str], list[dict[str, str]]] = {}
    for row in csv.DictReader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE):
        if row.get("level") != WORD_LEVEL or not (row.get("text") or "").strip():
            continue
        key = (row["page_num"], row["block_num"], row["par_num"], row["line_num"])
        groups.setdefault(key, []).append(row)
    lines = []
    for words in groups.values():
        x0 = min(int(w["left"]) for w in words)
        y0 = min(int(w["top"]) for w in words)
        x1 = max(int(w["left"]) + int(w["width"]) for w in words)
        y1 = max(int(w["top"]) + int(w["height"]) for w in words)
        confs = [max(0.0, float(w["conf"])) / 100.0 for w in words]
        lines.append(
            Line(
                text=" ".join(w["text"].strip() for w in words),
                confidence=sum(confs) / len(confs),
                box=(
                    (float(x0), float(y0)),
                    (float(x1), float(y0)),
                    (float(x1), float(y1)),
                    (float(x0), float(y1)),
                ),
                words=tuple(_word(w, conf) for w, conf in zip(words, confs, strict=True)),
            )
        )
    return tuple(lines)


def _word(row: dict[str, str], confidence: float) -> Word:
    left, top = float(row["left"]), float(row["top"])
    box = (left, top, left + float(row["width"]), top + float(row["height"]))
    return Word(row["text"].strip(), confidence, box)
