"""OCR: the engine contract, engines picked by settings, and the page pipeline around them."""

import os

# onnxruntime >= 1.29 sends usage events from Linux too and, on import, writes a device id
# (".ses") into TMPDIR; workers OCR private documents, often offline: off unless asked for.
# Read once by onnxruntime when it is first imported, which happens below this package.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

from pipeline.ocr.base import Line, OcrEngine, PageResult
from pipeline.ocr.page import recognize_page
from pipeline.ocr.registry import get_engine

__all__ = ["Line", "OcrEngine", "PageResult", "get_engine", "recognize_page"]
