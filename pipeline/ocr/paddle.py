"""Optional engine over ``paddleocr`` (PaddlePaddle), with models from PADDLEOCR_*_MODEL_DIR only.

PaddleOCR downloads models from a hub when no directory is given, which fails on an offline
worker halfway through a job; so we refuse to build it without explicit model directories.
``paddleocr`` is imported lazily: it is an optional extra, heavy to import.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import EngineUnavailableError
from pipeline.ocr.base import Image, Line, PageResult
from pipeline.ocr.languages import resolve_all
from pipeline.settings import Settings


def is_available(settings: Settings) -> bool:
    """True when paddleocr is importable and det and rec model directories exist."""
    return importlib.util.find_spec("paddleocr") is not None and all(
        d is not None and d.is_dir() for d in (settings.det_model_dir, settings.rec_model_dir)
    )


class PaddleEngine:
    """PaddleOCR's own pipeline; calls are serialised because its predictors are not thread-safe."""

    name = "paddle"

    def __init__(
        self,
        *,
        languages: tuple[str, ...],
        det_model_dir: Path | None,
        rec_model_dir: Path | None,
        cls_model_dir: Path | None,
        use_gpu: bool = False,
    ) -> None:
        if importlib.util.find_spec("paddleocr") is None:
            raise EngineUnavailableError(
                "the paddle engine needs paddleocr and paddlepaddle (or paddlepaddle-gpu): "
                "pip install paddleocr paddlepaddle, or use PAGEMILL_OCR_ENGINE=onnx"
            )
        for variable, directory in (
            ("PADDLEOCR_DET_MODEL_DIR", det_model_dir),
            ("PADDLEOCR_REC_MODEL_DIR", rec_model_dir),
        ):
            if directory is None or not directory.is_dir():
                raise EngineUnavailableError(
                    f"the paddle engine needs {variable} pointing at a local model directory "
                    f"(got {directory}); without it PaddleOCR downloads models, which fails offline"
                )
        resolved = resolve_all(languages)
        self.languages = tuple(language.code for language in resolved)
        paddleocr = importlib.import_module("paddleocr")
        options: dict[str, Any] = {
            "lang": resolved[0].code,
            "text_detection_model_dir": str(det_model_dir),
            "text_recognition_model_dir": str(rec_model_dir),
            "use_doc_orientation_classify": False,  # pagemill turns pages upright itself
            "use_doc_unwarping": False,
            "use_textline_orientation": cls_model_dir is not None,
            "device": "gpu" if use_gpu else "cpu",
        }
        if cls_model_dir is not None:
            options["textline_orientation_model_dir"] = str(cls_model_dir)
        try:
            self._ocr = paddleocr.PaddleOCR(**options)
        except Exception as exc:  # paddleocr raises many types for bad dirs / missing paddle
            raise EngineUnavailableError(f"PaddleOCR could not load its models: {exc}") from exc
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, languages: tuple[str, ...]) -> PaddleEngine:
        """The engine on the PADDLEOCR_*_MODEL_DIR models."""
        return cls(
            languages=languages,
            det_model_dir=settings.det_model_dir,
            rec_model_dir=settings.rec_model_dir,
            cls_model_dir=settings.cls_model_dir,
            use_gpu=settings.use_gpu,
        )

    def recognize(self, image: Image) -> PageResult:
        """PaddleOCR 3.x ``predict`` on the BGR page, mapped onto our lines."""
        started = time.perf_counter()
        with self._lock:
            results = self._ocr.predict(np.ascontiguousarray(image[:, :, ::-1]))
        lines: list[Line] = []
        for res in results:
            data = res.json.get("res", res.json) if hasattr(res, "json") else res
            for text, score, poly in zip(
                data["rec_texts"], data["rec_scores"], data["rec_polys"], strict=False
            ):
                pts = [(float(x), float(y)) for x, y in np.asarray(poly).reshape(-1, 2)[:4]]
                if text.strip() and len(pts) == 4:
                    lines.append(
                        Line(text=text.strip(), confidence=float(score), box=(pts[0], pts[1], pts[2], pts[3]))
                    )
        height, width = image.shape[:2]
        return PageResult(
            lines=tuple(lines),
            width=width,
            height=height,
            timings={"recognize": time.perf_counter() - started},
        )
