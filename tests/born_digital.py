"""Born-digital PDFs with text we know, written by reportlab: the text lives in the file.

Pages use the standard 14 fonts (not embedded, WinAnsi encoding) and DejaVu TrueType fonts
(embedded subsets, for letters WinAnsi lacks and for the ``ﬁ`` ligature glyph). What each page
says is returned with it, in reading order, one string per line.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reportlab.lib.pagesizes import A4
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

DEJAVU_DIR = Path("/usr/share/fonts/truetype/dejavu")  # fonts-dejavu-core (scripts/bootstrap)
MARGIN = 72.0  # pt
LEADING = 16.0  # pt between baselines
SIZE = 11.0  # pt


@dataclass(frozen=True, slots=True)
class Page:
    """One page to write: blocks of lines, each at (x, top y) in pt from the top-left, in order."""

    blocks: tuple[tuple[float, float, str, tuple[str, ...]], ...]  # (x, y, font, lines)
    rotate: int = 0  # the page's /Rotate: 0, or 90 with the content drawn turned back (reads upright)

    @property
    def lines(self) -> list[str]:
        return [line for _x, _y, _font, lines in self.blocks for line in lines]


def _register_fonts() -> None:
    for name, file in (("DejaVuSans", "DejaVuSans.ttf"), ("DejaVuSerif", "DejaVuSerif.ttf")):
        if name not in pdfmetrics.getRegisteredFontNames():
            pdfmetrics.registerFont(TTFont(name, str(DEJAVU_DIR / file)))


def pdf_bytes(pages: Sequence[Page]) -> bytes:
    """A PDF with one A4 page per ``Page``."""
    _register_fonts()
    out = io.BytesIO()
    canvas = Canvas(out, pagesize=A4, invariant=True)
    _width, height = A4
    for page in pages:
        if page.rotate not in (0, 90):
            raise ValueError(f"rotate must be 0 or 90, not {page.rotate}")
        if page.rotate:
            # reportlab then stores the page landscape (MediaBox 842x595) under /Rotate 90, as
            # scanners and print drivers do; the content is drawn turned a quarter counter-clockwise
            # in user space, so the displayed A4 page reads upright with (x, y) from its top-left.
            canvas.setPageRotation(page.rotate)
            canvas.rotate(90)
        for x, top, font, lines in page.blocks:
            canvas.setFont(font, SIZE)
            for i, line in enumerate(lines):
                baseline = top + SIZE + i * LEADING  # pt down from the displayed top edge
                canvas.drawString(x, -baseline if page.rotate else height - baseline, line)
        canvas.showPage()
    canvas.save()
    return out.getvalue()


def single(font: str, lines: Sequence[str], *, rotate: int = 0) -> Page:
    """One block of ``lines`` from the top-left margin."""
    return Page(((MARGIN, MARGIN, font, tuple(lines)),), rotate)


def two_columns(font: str, left: Sequence[str], right: Sequence[str]) -> Page:
    """Two columns side by side; the left one is read first."""
    width, _height = A4
    return Page(((MARGIN, MARGIN, font, tuple(left)), (width / 2 + 12, MARGIN, font, tuple(right))))


# Words with accents and letters outside Latin-1, the fi ligature written as its own glyph.
DIACRITICS = (
    "Müller & Söhne, Hauptstraße 12, München",
    "Ærøskøbing, Łódź, Kraków, Dvořák, Škoda",
    "Le cœur a ses raisons: naïve, déjà vu, où, çà",
    "Die ﬁnale Rechnung, the ﬁrst ﬁle",
)
LETTER = (
    "Dear customer,",
    "thank you for your order of 14 March.",
    "The parcel leaves our warehouse today",
    "and should reach you within three days.",
)
CODE = ("def total(items):", "    return sum(i.price for i in items)")
LEFT = ("Columns are read from top", "to bottom, then the next", "column starts at the top.")
RIGHT = ("This second column holds", "the rest of the story and", "must come after the first.")


def sample_pages() -> list[Page]:
    """Several fonts, two columns, diacritics and a ligature, and a page turned by /Rotate."""
    return [
        single("Helvetica", LETTER),
        single("DejaVuSerif", DIACRITICS),
        two_columns("Times-Roman", LEFT, RIGHT),
        single("Courier", CODE),
        single("DejaVuSans", LETTER, rotate=90),
    ]


def report_pages(count: int) -> list[Page]:
    """``count`` dense pages of a report (for benchmarks): 40 lines of body text each."""
    body = [
        f"{n:03d}. The quarterly report lists revenue, costs and the outlook for each region."
        for n in range(1, 41)
    ]
    return [single("Times-Roman", (f"Section {page}", *body)) for page in range(1, count + 1)]
