"""ALTO XML v4: the document result as Layout > Page > PrintSpace > TextBlock > TextLine > String.

Lines are kept in reading order; a new ``TextBlock`` starts where the next line jumps up the page
(a new column) or leaves a gap taller than a line (a new paragraph). Positions are whole pixels
(``MeasurementUnit`` pixel) of the page image the result refers to; ``WC`` is the word's
confidence, 0..1. Failed pages are listed as empty ``Page`` elements. Schema:
https://www.loc.gov/standards/alto/
"""

from __future__ import annotations

import itertools
import statistics
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any

from pipeline.outputs.words import Bbox, PlacedLine, page_lines, page_size, union, xml_safe

NAMESPACE = "http://www.loc.gov/standards/alto/ns-v4#"
SCHEMA_LOCATION = "http://www.loc.gov/standards/alto/v4/alto-4-2.xsd"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
SOFTWARE = "pagemill"
# A vertical gap wider than this many median line heights starts a new TextBlock.
BLOCK_GAP = 1.0


def to_alto(result: dict[str, Any]) -> str:
    """The document result (``result.json``) as an ALTO v4 document."""
    # The namespace is written as plain attributes so that no process-wide prefix has to be
    # registered (ET.register_namespace) and elements need no "{namespace}" in their tags.
    root = ET.Element(
        "alto",
        {"xmlns": NAMESPACE, "xmlns:xsi": XSI, "xsi:schemaLocation": f"{NAMESPACE} {SCHEMA_LOCATION}"},
    )
    root.append(_description(xml_safe(str(result.get("filename") or "document"))))
    layout = ET.SubElement(root, "Layout")
    for page in result.get("pages") or []:
        layout.append(_page(page))
    ET.indent(root, space=" ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _description(filename: str) -> ET.Element:
    description = ET.Element("Description")
    ET.SubElement(description, "MeasurementUnit").text = "pixel"
    source = ET.SubElement(description, "sourceImageInformation")
    ET.SubElement(source, "fileName").text = filename
    # ALTO 4 deprecates OCRProcessing in favour of Processing, which holds the same software.
    processing = ET.SubElement(description, "Processing", ID="processing_1")
    software = ET.SubElement(processing, "processingSoftware")
    ET.SubElement(software, "softwareName").text = SOFTWARE
    return description


def _page(page: dict[str, Any]) -> ET.Element:
    number = int(page["page_no"])
    element = ET.Element("Page", ID=f"page_{number}", PHYSICAL_IMG_NR=str(number))
    size = page_size(page)
    if size is not None:
        element.set("WIDTH", str(size[0]))
        element.set("HEIGHT", str(size[1]))
    lines = page_lines(page)
    if size is None and not lines:
        return element
    space = ET.SubElement(element, "PrintSpace", ID=f"space_{number}")
    if size is not None:
        _position(space, (0, 0, *size))
    line_no = 0
    for block_no, block in enumerate(_blocks(lines), start=1):
        text_block = ET.SubElement(space, "TextBlock", ID=f"block_{number}_{block_no}")
        _position(text_block, union([line.bbox for line in block]))
        for line in block:
            line_no += 1
            text_block.append(_line(line, f"{number}_{line_no}"))
    return element


def _line(line: PlacedLine, ref: str) -> ET.Element:
    element = ET.Element("TextLine", ID=f"line_{ref}")
    _position(element, line.bbox)
    for i, word in enumerate(line.words, start=1):
        if i > 1:
            left = line.words[i - 2].x1
            gap = {
                "HPOS": str(min(left, word.x0)),
                "VPOS": str(line.bbox[1]),
                "WIDTH": str(max(word.x0 - left, 0)),
            }
            ET.SubElement(element, "SP", gap)
        string = ET.SubElement(element, "String", ID=f"string_{ref}_{i}", CONTENT=word.text)
        _position(string, word.bbox)
        string.set("WC", f"{word.confidence:.4g}")
    return element


def _blocks(lines: Sequence[PlacedLine]) -> list[list[PlacedLine]]:
    if not lines:
        return []
    height = statistics.median(line.bbox[3] - line.bbox[1] for line in lines)
    blocks = [[lines[0]]]
    for previous, line in itertools.pairwise(lines):
        up = line.bbox[1] < previous.bbox[1] - height / 2
        gap = line.bbox[1] - previous.bbox[3] > height * BLOCK_GAP
        if up or gap:
            blocks.append([])
        blocks[-1].append(line)
    return blocks


def _position(element: ET.Element, box: Bbox) -> None:
    x0, y0, x1, y1 = box
    for name, value in (("HPOS", x0), ("VPOS", y0), ("WIDTH", x1 - x0), ("HEIGHT", y1 - y0)):
        element.set(name, str(value))
