"""Make pm_de_fr_table.png + .gt.txt: a scan-like page of German and French text and a 3x3 table.

The page the real fixtures lack: every German umlaut and ß, the French accents (é è ê ç à î ï œ),
and a ruled table of short cells, set in DejaVu (a real TrueType font) at 300 dpi, turned by
half a degree, blurred, noised and thresholded to one bit per pixel like an office scanner's
output. The output is committed; rerun this after changing it (seeded: the same bytes each time).

    .venv/bin/python tests/resources/ocr/make_de_fr_table.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

HERE = Path(__file__).resolve().parent
NAME = "pm_de_fr_table"
FONTS = Path("/usr/share/fonts/truetype/dejavu")  # Debian fonts-dejavu-core
DPI = 300
WIDTH, HEIGHT = 2480, 1600  # px: A4 width at 300 dpi, the upper part of a page
MARGIN = 220  # px
BODY_PT, TITLE_PT = 11, 14  # point sizes; px = pt * DPI / 72
LEADING = 1.45  # line pitch / font size
SKEW_DEG = 0.5  # a sheet fed slightly askew
BLUR_PX = 0.9  # optics of a 300 dpi scanner
NOISE_SIGMA = 28.0  # grey levels of sensor noise before thresholding
SPECKS = 400  # dust and toner dots, 2-5 px across
SEED = 12

TITLE = "Rechnung / Facture Nr. 2026-0412"
GERMAN = [
    "Müller & Söhne, Hauptstraße 17, München",
    "Sehr geehrte Frau Bäcker, für die Lieferung über fünf Körbe",
    "Äpfel und zwölf Flaschen Öl berechnen wir Ihnen den unten",
    "genannten Betrag. Größere Mengen schicken wir übermorgen.",
]
FRENCH = [
    "Chère Madame Lefèvre, voici la facture de la crème brûlée",
    "livrée à l'hôtel de Besançon. Le garçon a reçu un maïs naïf,",
    "le maître d'hôtel a dîné avec sa sœur : une fête très réussie.",
]
TABLE = [
    ("Artikel", "Menge", "Preis"),
    ("Äpfel (Körbe)", "5", "12,50 €"),
    ("Crème fraîche", "3", "4,80 €"),
]
COLUMNS = (0.0, 0.45, 0.7, 1.0)  # table column edges as fractions of the text width
FOOTER = "Zahlbar innerhalb von 14 Tagen. Merci, à bientôt."


def _px(points: float) -> int:
    return round(points * DPI / 72)


def render() -> tuple[Image.Image, str]:
    """The scan-like page and its ground truth (reading order: title, text, table rows, footer)."""
    page = Image.new("L", (WIDTH, HEIGHT), 255)
    draw = ImageDraw.Draw(page)
    body = ImageFont.truetype(str(FONTS / "DejaVuSerif.ttf"), _px(BODY_PT))
    sans = ImageFont.truetype(str(FONTS / "DejaVuSans.ttf"), _px(BODY_PT))
    bold = ImageFont.truetype(str(FONTS / "DejaVuSans-Bold.ttf"), _px(TITLE_PT))
    pitch = round(_px(BODY_PT) * LEADING)
    y = MARGIN
    draw.text((MARGIN, y), TITLE, font=bold, fill=0)
    y += 2 * pitch
    for line in GERMAN:
        draw.text((MARGIN, y), line, font=body, fill=0)
        y += pitch
    y += pitch // 2
    for line in FRENCH:
        draw.text((MARGIN, y), line, font=body, fill=0)
        y += pitch
    y += pitch
    text_width = WIDTH - 2 * MARGIN
    edges = [MARGIN + round(f * text_width * 0.8) for f in COLUMNS]  # the table takes 80% of the width
    row_h = round(pitch * 1.3)
    top = y
    for r, row in enumerate(TABLE):
        font = ImageFont.truetype(str(FONTS / "DejaVuSans-Bold.ttf"), _px(BODY_PT)) if r == 0 else sans
        for c, cell in enumerate(row):
            draw.text((edges[c] + 20, y + (row_h - _px(BODY_PT)) // 2 - 4), cell, font=font, fill=0)
        y += row_h
    for k in range(len(TABLE) + 1):  # rules: 3 px, as a laser printer draws hairlines at 300 dpi
        draw.line([(edges[0], top + k * row_h), (edges[-1], top + k * row_h)], fill=0, width=3)
    for x in edges:
        draw.line([(x, top), (x, top + len(TABLE) * row_h)], fill=0, width=3)
    y += pitch
    draw.text((MARGIN, y), FOOTER, font=body, fill=0)

    scanned = page.rotate(SKEW_DEG, resample=Image.Resampling.BICUBIC, fillcolor=255)
    scanned = scanned.filter(ImageFilter.GaussianBlur(BLUR_PX))
    rng = np.random.default_rng(SEED)
    specks = ImageDraw.Draw(scanned)
    for x, y, r in zip(
        rng.integers(0, WIDTH, SPECKS), rng.integers(0, HEIGHT, SPECKS), rng.uniform(1, 2.5, SPECKS)
    ):
        specks.ellipse([(x - r, y - r), (x + r, y + r)], fill=int(rng.integers(0, 120)))
    grey = np.asarray(scanned, dtype=np.float32) + rng.normal(0.0, NOISE_SIGMA, (HEIGHT, WIDTH))
    bilevel = Image.fromarray(np.where(grey > 128, 255, 0).astype(np.uint8)).convert("1")
    truth = "\n".join([TITLE, *GERMAN, *FRENCH, *(" ".join(row) for row in TABLE), FOOTER]) + "\n"
    return bilevel, truth


def main() -> None:
    """Write the page and its truth next to this script."""
    image, truth = render()
    image.save(HERE / f"{NAME}.png", dpi=(DPI, DPI), optimize=True)
    (HERE / f"{NAME}.gt.txt").write_text(truth, encoding="utf-8")
    print(f"wrote {NAME}.png ({image.width}x{image.height}) and {NAME}.gt.txt")


if __name__ == "__main__":
    main()
