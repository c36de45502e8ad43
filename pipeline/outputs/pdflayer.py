"""A page's invisible text layer: made on the worker that read the page, grafted at aggregation.

The layer of an OCRed page is a one-page PDF as large as the image the page was read from (one
unit per rendered pixel, as the reader sees the page), holding the page's words in text render
mode 3 (invisible) in reading order: each word is stretched (``Tz``) over its box and a space
spans the gap to the next word, so copy/paste, search and ``pdftotext -bbox`` find the words where
they are printed. The words are written in the upright (turned, deskewed) frame OCR saw; one
``cm`` maps that frame back onto the image, so a page that was read sideways or skewed gets text
that follows its print.

The font is a "glyphless" TrueType (every glyph empty and half an em wide, ascent 0.8 em, descent
0.2 em), encoded Identity-H with each character's UTF-16 code as its CID and a ToUnicode map back:
any text of the Basic Multilingual Plane can be written, and nothing is ever drawn.
The layer PDF is complete on its own (``pdftotext`` reads it), which keeps it easy to inspect.
"""

from __future__ import annotations

import functools
import io
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pikepdf

from pipeline.ocr.orientation import upright_transform
from pipeline.outputs.words import PlacedLine, page_lines

# Font metrics in thousandths of an em; the word boxes are mapped onto ascent..descent.
ASCENT = 800
DESCENT = -200
ADVANCE = 500  # every glyph's width
FONT_NAME = "PagemillGlyphless"
FONT_RESOURCE = "/F1"  # the font's name inside a layer's resources
# The least gap between two words, in font sizes: below about 0.16 ``pdftotext -raw`` writes
# two words as one (measured with poppler 22.12), so closer words end a little early.
WORD_BREAK = 0.25


@functools.cache
def glyphless_font_file() -> bytes:
    """The glyphless TrueType font program: .notdef and one empty glyph, both ADVANCE wide."""
    from fontTools.fontBuilder import FontBuilder
    from fontTools.pens.ttGlyphPen import TTGlyphPen

    builder = FontBuilder(1000, isTTF=True)
    builder.setupGlyphOrder([".notdef", "blank"])
    builder.setupCharacterMap({0x20: "blank"})
    empty = TTGlyphPen(None).glyph()
    builder.setupGlyf({".notdef": empty, "blank": empty})
    builder.setupHorizontalMetrics({".notdef": (ADVANCE, 0), "blank": (ADVANCE, 0)})
    builder.setupHorizontalHeader(ascent=ASCENT, descent=DESCENT)
    builder.setupNameTable({"familyName": FONT_NAME, "styleName": "Regular"})
    builder.setupOS2(sTypoAscender=ASCENT, sTypoDescender=DESCENT, usWinAscent=ASCENT, usWinDescent=-DESCENT)
    builder.setupPost()
    out = io.BytesIO()
    builder.save(out)
    return out.getvalue()


def _to_unicode_cmap() -> bytes:
    # CID = UTF-16 code unit: one identity range per high byte (a bfrange may only vary its last
    # byte), surrogates left out (non-BMP characters are written as U+FFFD).
    ranges = [f"<{hi:02X}00> <{hi:02X}FF> <{hi:02X}00>" for hi in range(256) if not 0xD8 <= hi <= 0xDF]
    chunks = [ranges[i : i + 100] for i in range(0, len(ranges), 100)]  # at most 100 per block
    body = "\n".join(f"{len(c)} beginbfrange\n" + "\n".join(c) + "\nendbfrange" for c in chunks)
    return (
        "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n"
        "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
        f"/CMapName /{FONT_NAME}-UCS def\n/CMapType 2 def\n"
        "1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n"
        f"{body}\nendcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n"
    ).encode("ascii")


def add_font(pdf: pikepdf.Pdf) -> pikepdf.Object:
    """The glyphless Type0 font, added to ``pdf`` once (indirect), for layers to reference."""
    font_file = pikepdf.Stream(pdf, glyphless_font_file())
    font_file.Length1 = len(glyphless_font_file())
    descriptor = pikepdf.Dictionary(
        Type=pikepdf.Name.FontDescriptor,
        FontName=pikepdf.Name("/" + FONT_NAME),
        Flags=5,  # fixed pitch, symbolic
        FontBBox=[0, DESCENT, ADVANCE, ASCENT],
        ItalicAngle=0,
        Ascent=ASCENT,
        Descent=DESCENT,
        CapHeight=ASCENT,
        StemV=80,
        FontFile2=pdf.make_indirect(font_file),
    )
    # Every CID draws glyph 1: two bytes per CID, compressed to a few hundred bytes.
    cid_to_gid = pikepdf.Stream(pdf, zlib.compress(b"\x00\x01" * 65536, 9))
    cid_to_gid.Filter = pikepdf.Name.FlateDecode
    cid_font = pikepdf.Dictionary(
        Type=pikepdf.Name.Font,
        Subtype=pikepdf.Name.CIDFontType2,
        BaseFont=pikepdf.Name("/" + FONT_NAME),
        CIDSystemInfo=pikepdf.Dictionary(
            Registry=pikepdf.String("Adobe"), Ordering=pikepdf.String("Identity"), Supplement=0
        ),
        FontDescriptor=pdf.make_indirect(descriptor),
        DW=ADVANCE,
        CIDToGIDMap=pdf.make_indirect(cid_to_gid),
    )
    to_unicode = pikepdf.Stream(pdf, zlib.compress(_to_unicode_cmap(), 9))
    to_unicode.Filter = pikepdf.Name.FlateDecode
    font = pikepdf.Dictionary(
        Type=pikepdf.Name.Font,
        Subtype=pikepdf.Name.Type0,
        BaseFont=pikepdf.Name("/" + FONT_NAME),
        Encoding=pikepdf.Name("/Identity-H"),
        DescendantFonts=[pdf.make_indirect(cid_font)],
        ToUnicode=pdf.make_indirect(to_unicode),
    )
    return pdf.make_indirect(font)


def _num(value: float) -> str:
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _hex(text: str) -> str:
    # UTF-16BE code units as CIDs; characters beyond the BMP (surrogate pairs) become U+FFFD.
    return "".join(
        f"{ord(c):04X}" if ord(c) <= 0xFFFF and not 0xD800 <= ord(c) <= 0xDFFF else "FFFD" for c in text
    )


def _line_ops(line: PlacedLine, height: float) -> list[str]:
    """One line's words, in the upright frame turned y-up (``height`` is the upright page's)."""
    top = min(w.y0 for w in line.words)
    bottom = max(w.y1 for w in line.words)
    size = max(bottom - top, 1.0)
    baseline = height - bottom - DESCENT / 1000 * size
    ops = [f"{FONT_RESOURCE} {_num(size)} Tf"]
    em = ADVANCE / 1000 * size  # the width of one glyph at 100 % horizontal scaling
    words = [w for w in line.words if w.text.strip()]
    space = WORD_BREAK * size
    for index, word in enumerate(words):
        text = word.text.strip()
        end = float(word.x1)
        if index + 1 < len(words):
            # Touching or overlapping boxes: end the word a little early, or extraction would
            # join it with the next one.
            end = max(min(end, words[index + 1].x0 - space), word.x0 + (word.x1 - word.x0) / 2)
        ops.append(f"1 0 0 1 {_num(word.x0)} {_num(baseline)} Tm")
        ops.append(f"{_num(100 * max(end - word.x0, 1.0) / (em * len(text)))} Tz <{_hex(text)}> Tj")
        if index + 1 < len(words):
            # A space over the gap to the next word, so that extraction and copy/paste put one there.
            ops.append(f"{_num(100 * max(words[index + 1].x0 - end, 0.5) / em)} Tz <0020> Tj")
    return ops


def layer_content(page: dict[str, Any], *, image_size: tuple[int, int]) -> bytes:
    """The content stream of a page's layer; ``page`` is its ``result.json`` page entry.

    ``image_size`` is (width, height) of the image OCR was given: the layer's page size.
    """
    lines = page_lines(page)
    if not lines:
        return b""
    image_w, image_h = image_size
    upright_h = float(page.get("height") or image_h)
    # Upright y-up -> upright y-down -> image y-down -> layer (image) y-up.
    flip_upright = np.array([[1, 0, 0], [0, -1, upright_h], [0, 0, 1]], dtype=np.float64)
    to_image = np.linalg.inv(
        upright_transform(image_w, image_h, int(page.get("rotation") or 0), float(page.get("skew") or 0.0))
    )
    flip_image = np.array([[1, 0, 0], [0, -1, image_h], [0, 0, 1]], dtype=np.float64)
    m = flip_image @ to_image @ flip_upright
    ops = [
        "q",
        " ".join(_num(v) for v in (m[0, 0], m[1, 0], m[0, 1], m[1, 1], m[0, 2], m[1, 2])) + " cm",
        "BT",
        "3 Tr",
    ]
    for line in lines:
        ops.extend(_line_ops(line, upright_h))
    ops.extend(["ET", "Q", ""])
    return "\n".join(ops).encode("ascii")


def layer_pdf(page: dict[str, Any], *, image_size: tuple[int, int]) -> bytes:
    """The page's layer as a one-page PDF of ``image_size`` units (see ``layer_content``)."""
    pdf = pikepdf.new()
    width, height = image_size
    pdf.add_blank_page(page_size=(width, height))
    layer = pdf.pages[0]
    layer.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary({FONT_RESOURCE: add_font(pdf)}))
    layer.Contents = pdf.make_stream(layer_content(page, image_size=image_size))
    out = io.BytesIO()
    pdf.save(out, compress_streams=True)
    return out.getvalue()


def read_layer(data: bytes) -> tuple[bytes, tuple[float, float]]:
    """A layer PDF's content stream and its page size (width, height)."""
    with pikepdf.open(io.BytesIO(data)) as pdf:
        page = pdf.pages[0]
        box: Sequence[float] = [float(v) for v in page.mediabox]
        return page.Contents.read_bytes(), (box[2] - box[0], box[3] - box[1])
