"""OCR: the engine contract, engines picked by settings, and the page pipeline around them."""

from pipeline.ocr.base import Line, OcrEngine, PageResult
from pipeline.ocr.page import recognize_page
from pipeline.ocr.registry import get_engine

__all__ = ["Line", "OcrEngine", "PageResult", "get_engine", "recognize_page"]
