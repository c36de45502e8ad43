"""Pick the OCR engine named in settings and keep one instance per process.

``ENGINES`` maps ``PAGEMILL_OCR_ENGINE`` values to factories; adding an engine is one entry
here, never a branch elsewhere. Models load once per worker process, under a lock, so threads
of one worker that ask at the same time share a single load.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import structlog

from pipeline.errors import EngineUnavailableError
from pipeline.ocr import paddle
from pipeline.ocr.base import OcrEngine
from pipeline.ocr.languages import resolve_all
from pipeline.ocr.onnx import OnnxEngine
from pipeline.ocr.tesseract import TesseractEngine
from pipeline.settings import Settings

log = structlog.get_logger(__name__)

EngineFactory = Callable[[Settings, tuple[str, ...]], OcrEngine]

ENGINES: dict[str, EngineFactory] = {
    "onnx": OnnxEngine.from_settings,
    "tesseract": TesseractEngine.from_settings,
    "paddle": paddle.PaddleEngine.from_settings,
}

_CacheKey = tuple[str, str, tuple[str, ...], int, bool, Path | None, Path | None, Path | None]
_cache: dict[_CacheKey, OcrEngine] = {}
_lock = threading.Lock()


def engine_name(settings: Settings) -> str:
    """The concrete engine ``settings`` select: ``auto`` is paddle when usable, else onnx."""
    if settings.ocr_engine == "auto":
        return "paddle" if paddle.is_available(settings) else "onnx"
    return settings.ocr_engine


def get_engine(settings: Settings, languages: tuple[str, ...]) -> OcrEngine:
    """The process-wide engine for ``settings`` and ``languages``, created on first use."""
    name = engine_name(settings)
    factory = ENGINES.get(name)
    if factory is None:
        raise EngineUnavailableError(
            f"unknown OCR engine {settings.ocr_engine!r} (PAGEMILL_OCR_ENGINE); use auto or one of {', '.join(ENGINES)}"
        )
    codes = tuple(language.code for language in resolve_all(languages))
    key: _CacheKey = (
        name,
        settings.ocr_profile,  # the onnx engine's models; other engines ignore it
        codes,
        settings.ocr_threads,
        settings.use_gpu,
        settings.det_model_dir,
        settings.rec_model_dir,
        settings.cls_model_dir,
    )
    engine = _cache.get(key)
    if engine is not None:
        return engine
    with _lock:
        engine = _cache.get(key)
        if engine is None:
            engine = factory(settings, codes)
            _cache[key] = engine
            log.info("ocr.engine_loaded", engine=name, profile=settings.ocr_profile, languages=list(codes))
        return engine


def clear_cache() -> None:
    """Forget loaded engines (tests; a worker never needs this)."""
    with _lock:
        _cache.clear()
