"""Engine choice from settings, one engine per process, readable errors."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from pipeline.errors import EngineUnavailableError
from pipeline.ocr import OcrEngine, get_engine, registry
from pipeline.ocr.base import Image, PageResult
from pipeline.ocr.paddle import PaddleEngine
from pipeline.settings import ExplicitSettings


class _Counting:
    """A stand-in engine whose construction is slow and counted."""

    name = "counting"
    created = 0

    def __init__(self, languages: tuple[str, ...]) -> None:
        time.sleep(0.2)  # a model load: other threads must wait for this one, not start their own
        type(self).created += 1
        self.languages = languages

    def recognize(self, image: Image) -> PageResult:
        return PageResult(lines=())


def test_engine_is_created_once_per_process_even_under_concurrency(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.ENGINES, "counting", lambda settings, languages: _Counting(languages))
    settings = ExplicitSettings(ocr_engine="counting")
    found: list[OcrEngine] = []
    threads = [threading.Thread(target=lambda: found.append(get_engine(settings, ("en",)))) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert _Counting.created == 1
    assert all(engine is found[0] for engine in found)
    assert get_engine(settings, ("english",)) is found[0]  # aliases share the cache entry
    assert get_engine(settings, ("fr",)) is not found[0]


def test_auto_is_onnx_without_paddle(onnx_engine: OcrEngine) -> None:
    engine = get_engine(ExplicitSettings(ocr_engine="auto", ocr_threads=2), ("en",))
    assert engine.name == "onnx"
    assert engine is onnx_engine


def test_unknown_engine_names_the_choices() -> None:
    with pytest.raises(EngineUnavailableError, match="unknown OCR engine 'abbyy'.*onnx, tesseract, paddle"):
        get_engine(ExplicitSettings(ocr_engine="abbyy"), ("en",))


def test_unknown_language_names_the_setting() -> None:
    with pytest.raises(EngineUnavailableError, match="unknown OCR language 'klingon'.*PADDLEOCR_LANG"):
        get_engine(ExplicitSettings(ocr_engine="onnx"), ("klingon",))


def test_onnx_refuses_a_script_its_models_cannot_read() -> None:
    with pytest.raises(EngineUnavailableError, match="do not read 'korean'"):
        get_engine(ExplicitSettings(ocr_engine="onnx"), ("ko",))


def test_paddle_without_paddleocr_or_model_dirs_says_why(tmp_path: Path) -> None:
    with pytest.raises(EngineUnavailableError, match="paddleocr"):
        get_engine(ExplicitSettings(ocr_engine="paddle"), ("en",))
    with pytest.raises(EngineUnavailableError):
        PaddleEngine(languages=("en",), det_model_dir=tmp_path, rec_model_dir=None, cls_model_dir=None)


def test_onnx_missing_model_file_says_how_to_fix(tmp_path: Path) -> None:
    from pipeline.ocr.onnx import OnnxEngine

    with pytest.raises(EngineUnavailableError, match="missing"):
        OnnxEngine(languages=("en",), model_dir=tmp_path)


def test_each_onnx_profile_is_its_own_engine(onnx_engine: OcrEngine) -> None:
    fast = get_engine(ExplicitSettings(ocr_engine="onnx", ocr_threads=2, ocr_profile="fast"), ("en",))
    assert fast is not onnx_engine
    assert get_engine(ExplicitSettings(ocr_engine="onnx", ocr_threads=2, ocr_profile="fast"), ("en",)) is fast


def test_unknown_onnx_profile_names_the_choices() -> None:
    with pytest.raises(EngineUnavailableError, match="unknown OCR profile 'turbo'.*accurate, fast, cascade, v5"):
        get_engine(ExplicitSettings(ocr_engine="onnx", ocr_profile="turbo"), ("en",))
