"""Test pages with text we know: rendered with Pillow's bundled FreeType font, saved as PDF/PNG.

A page is drawn at 150 dpi on A4 (1240x1754 px); PDFs are written by Pillow with that
resolution so pdfium renders them back at any dpi.
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from pipeline.ocr import scoring

PAGE_SIZE = (1240, 1754)  # A4 at 150 dpi, pixels
DPI = 150
FONT_SIZE = 30  # px at 150 dpi: ~14 pt body text
LINE_STEP = 48  # px between baselines
MARGIN = 110  # px

PARAGRAPH_A = [
    "The quick brown fox jumps over the lazy dog.",
    "Pack my box with five dozen liquor jugs.",
    "Sphinx of black quartz, judge my vow.",
    "How vexingly quick daft zebras jump.",
    "Bright vixens jump; dozy fowl quack.",
    "Waltz, bad nymph, for quick jigs vex.",
]
PARAGRAPH_B = [
    "Invoices are due within thirty days.",
    "Please keep this receipt for your records.",
    "Deliveries arrive between nine and five.",
    "Questions go to the front desk first.",
    "All prices include the local sales tax.",
    "Thank you for shopping with us today.",
]
LEFT_COLUMN = [
    "Columns are read from top",
    "to bottom, then the next",
    "column starts at the top",
    "of the page again, which",
    "a naive sort would break.",
]
RIGHT_COLUMN = [
    "This second column holds",
    "the rest of the story and",
    "must come after the first",
    "column in the final text",
    "that pagemill produces.",
]


def _font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=FONT_SIZE)


def text_page(lines: list[str]) -> Image.Image:
    """A white A4 page with ``lines`` left-aligned from the top margin."""
    page = Image.new("L", PAGE_SIZE, 255)
    draw = ImageDraw.Draw(page)
    font = _font()
    for i, line in enumerate(lines):
        draw.text((MARGIN, MARGIN + i * LINE_STEP), line, fill=0, font=font)
    return page


def two_column_page(left: list[str], right: list[str]) -> Image.Image:
    """A page with two side-by-side columns whose lines share baselines."""
    page = Image.new("L", PAGE_SIZE, 255)
    draw = ImageDraw.Draw(page)
    font = _font()
    half = PAGE_SIZE[0] // 2
    for i, line in enumerate(left):
        draw.text((MARGIN - 40, MARGIN + i * LINE_STEP), line, fill=0, font=font)
    for i, line in enumerate(right):
        draw.text((half + 30, MARGIN + i * LINE_STEP), line, fill=0, font=font)
    return page


def blank_page(value: int = 0) -> Image.Image:
    """A page of one flat grey value (0 = black)."""
    return Image.new("L", PAGE_SIZE, value)


def rotated(page: Image.Image, degrees: int) -> Image.Image:
    """The page turned counter-clockwise by ``degrees`` (90/180/270), as a scanner might."""
    return page.rotate(degrees, expand=True, fillcolor=255)


def pdf_bytes(pages: list[Image.Image]) -> bytes:
    """A multi-page image PDF of ``pages``."""
    out = io.BytesIO()
    rgb = [p.convert("RGB") for p in pages]
    rgb[0].save(out, format="PDF", save_all=True, append_images=rgb[1:], resolution=DPI)
    return out.getvalue()


def write_pdf(path: Path, pages: list[Image.Image]) -> Path:
    """Write ``pages`` as a PDF file."""
    path.write_bytes(pdf_bytes(pages))
    return path


def cer(hypothesis: str, reference: str) -> float:
    """Character error rate of ``hypothesis`` against ``reference`` (the fixtures' MANIFEST scoring)."""
    return scoring.cer(reference, hypothesis)
