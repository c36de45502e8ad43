"""hOCR 1.2: the document result as XHTML with a box and a confidence on every word.

One ``ocr_page`` per page (failed pages too, empty), its ``ocr_line`` spans in reading order and
their ``ocrx_word`` spans, as Tesseract writes them less the block and paragraph levels. Boxes are
whole pixels of the page image the result refers to (``width`` x ``height``). Spec:
http://kba.github.io/hocr-spec/1.2/
"""

from __future__ import annotations

from html import escape
from typing import Any

from pipeline.outputs.words import Bbox, PlacedLine, Word, page_lines, page_size, xml_safe

OCR_SYSTEM = "pagemill"
CAPABILITIES = "ocr_page ocr_line ocrx_word ocrp_wconf"

_HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"
 "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">
<head>
<title>{title}</title>
<meta http-equiv="Content-Type" content="text/html; charset=utf-8"/>
<meta name="ocr-system" content="{system}"/>
<meta name="ocr-capabilities" content="{capabilities}"/>
<meta name="ocr-number-of-pages" content="{pages}"/>
</head>
<body>
"""
_TAIL = "</body>\n</html>\n"
# hOCR property values are split at ";" and quoted with '"' (hocr-spec 1.2, "Properties").
_NOT_IN_STRING = str.maketrans({'"': "'", ";": ",", "\\": "/"})


def to_hocr(result: dict[str, Any]) -> str:
    """The document result (``result.json``) as an hOCR document."""
    filename = xml_safe(str(result.get("filename") or "document"))
    pages = result.get("pages") or []
    head = _HEAD.format(
        title=escape(filename), system=OCR_SYSTEM, capabilities=CAPABILITIES, pages=len(pages)
    )
    return head + "".join(_page(page, filename) for page in pages) + _TAIL


def _page(page: dict[str, Any], filename: str) -> str:
    number = int(page["page_no"])
    props = [f'image "{filename.translate(_NOT_IN_STRING)}"']
    size = page_size(page)
    if size is not None:
        props.append(f"bbox 0 0 {size[0]} {size[1]}")
    props.append(f"ppageno {number - 1}")
    lines = "".join(_line(line, f"{number}_{i}") for i, line in enumerate(page_lines(page), start=1))
    return f'<div class="ocr_page" id="page_{number}" title="{escape("; ".join(props))}">\n{lines}</div>\n'


def _line(line: PlacedLine, ref: str) -> str:
    words = " ".join(_word(word, f"{ref}_{i}") for i, word in enumerate(line.words, start=1))
    return f' <span class="ocr_line" id="line_{ref}" title="{_bbox(line.bbox)}">{words}</span>\n'


def _word(word: Word, ref: str) -> str:
    title = f"{_bbox(word.bbox)}; x_wconf {round(word.confidence * 100)}"
    return f'<span class="ocrx_word" id="word_{ref}" title="{title}">{escape(word.text)}</span>'


def _bbox(box: Bbox) -> str:
    return "bbox {} {} {} {}".format(*box)
