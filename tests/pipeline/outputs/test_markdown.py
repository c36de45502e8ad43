"""Markdown from a document result: a born-digital PDF made here is read as the workers read it.

The PDF has headings set in larger type, wrapped paragraphs (one with a word hyphenated at a line
end), a bulleted and a numbered list, and a running header and a "Page N of 3" footer on every
page; its Markdown must hold exactly those blocks and none of the running lines. Smaller results
written out by hand cover what a text-layer page cannot show (OCR keeps line-end hyphens), and
one real scan is read by the default OCR engine (half a second).
"""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen.canvas import Canvas

from pipeline import aggregate, textlayer
from pipeline.jobs import Document, DocumentStatus, Page, PageStatus
from pipeline.ocr import get_engine, recognize_page
from pipeline.outputs.markdown import to_markdown
from pipeline.settings import ExplicitSettings

SCANS = Path(__file__).resolve().parents[2] / "resources" / "ocr"
DPI = 150
LEFT = 72.0  # pt, the body's left margin
TOP = 72.0  # pt, where the body starts
LEADING = 1.3  # baseline distance / font size
BODY = 11.0  # pt
HEADER = "Pagemill Field Guide, revision 2"


@dataclass(frozen=True, slots=True)
class Run:
    """One printed line: font size (pt), extra space above it (pt), indent (pt), text."""

    size: float
    space: float
    indent: float
    text: str


def body(*lines: str, space: float = 0.0, indent: float = 0.0) -> list[Run]:
    """Lines of body text; ``space`` above the first only."""
    return [Run(BODY, space if i == 0 else 0.0, indent, line) for i, line in enumerate(lines)]


def pdf_bytes(pages: list[list[Run]]) -> bytes:
    """A4 pages of Helvetica runs, each under the running header and over a "Page N of M" footer."""
    out = io.BytesIO()
    canvas = Canvas(out, pagesize=A4, invariant=True)
    width, height = A4
    for number, runs in enumerate(pages, start=1):
        canvas.setFont("Helvetica", 9)
        canvas.drawString(LEFT, height - 36, HEADER)
        canvas.drawCentredString(width / 2, 30, f"Page {number} of {len(pages)}")
        baseline = TOP
        for run in runs:
            baseline += run.space + run.size * LEADING
            canvas.setFont("Helvetica", run.size)
            canvas.drawString(LEFT + run.indent, height - baseline, run.text)
        canvas.showPage()
    canvas.save()
    return out.getvalue()


def document_result(path: Path) -> dict[str, Any]:
    """The PDF read as text-layer pages and aggregated, as ``result.json`` holds it."""
    pages = []
    for layer in textlayer.analyze_pdf(path, dpi=DPI):
        page = textlayer.layer_result(layer)
        pages.append(_page(layer.page_no, page.text, aggregate.page_to_json(page)))
    return aggregate.aggregate_document(_document(), pages).data


def _page(
    page_no: int, text: str, result: dict[str, Any] | None, status: PageStatus = PageStatus.DONE
) -> Page:
    return Page(uuid.UUID(int=1), page_no, status, 1, text, 1.0, result, None, 5)


def _document() -> Document:
    now = datetime.now(UTC)
    return Document(
        id=uuid.UUID(int=1), status=DocumentStatus.AGGREGATING, source_key="documents/x/source.pdf",
        filename="guide.pdf", kind="pdf", sha256=None, size_bytes=None, page_count=None, pages_finished=0,
        lang_hints=(), min_confidence=None, dpi=DPI, engine="onnx", error=None, options={},
        result_key=None, created_at=now, updated_at=now, finished_at=None,
    )  # fmt: skip


GUIDE = [
    [
        Run(20, 0, 0, "A Field Guide to Paper"),
        *body(
            "Paper has been made from plant fibres for two thousand years, and the",
            "craft spread from China along the trade routes to the Middle East and,",
            "much later, to Europe, where mills driven by water wheels turned rags into docu-",
            "ments, books and playing cards.",
            space=BODY,
        ),
        Run(15, BODY, 0, "How a sheet is formed"),
        *body("Fibres are beaten in water until they swell and fray. The pulp is then", space=4),
        *body("lifted on a mould, drained and pressed."),
        *body("A second paragraph follows after a blank line and says that the sheet", space=BODY),
        *body("must dry slowly."),
        *body("The tools of a mill:", space=BODY),
        *body("• a vat that holds the pulp,", space=3),
        *body("• a mould and deckle, the frame that shapes the sheet and gives it its"),
        *body("rough edge,", indent=10),
        *body("• felts and a press."),
    ],
    [
        Run(15, 0, 0, "Making a batch"),
        *body("Follow these steps in order; each one depends on the one before it.", space=4),
        *body("1. Soak the rags for a week.", space=3),
        *body("2. Beat them into pulp with a hollander beater until the fibres are fine"),
        *body("and even.", indent=12),
        *body("3) Pour the pulp into the vat."),
        *body("After pressing, the sheets are hung in a loft. A well-known rule says that", space=BODY),
        *body("a sheet dried too fast will cockle."),
    ],
    [
        *body(
            "Paper outlasts most of the media that came after it when it is kept dry",
            "and away from light.",
        ),
        *body("Care and storage", space=BODY),
        *body(
            "Store sheets flat in acid-free folders, away from heat, damp and sunlight,",
            "and handle them with clean, dry hands.",
        ),
        *body("# 5 is the grade of the finest rag paper.", space=BODY),
    ],
]

GUIDE_MARKDOWN = """\
<!-- page 1 -->

# A Field Guide to Paper

Paper has been made from plant fibres for two thousand years, and the craft spread from China \
along the trade routes to the Middle East and, much later, to Europe, where mills driven by water \
wheels turned rags into documents, books and playing cards.

## How a sheet is formed

Fibres are beaten in water until they swell and fray. The pulp is then lifted on a mould, drained \
and pressed.

A second paragraph follows after a blank line and says that the sheet must dry slowly.

The tools of a mill:

- a vat that holds the pulp,
- a mould and deckle, the frame that shapes the sheet and gives it its rough edge,
- felts and a press.

<!-- page 2 -->

## Making a batch

Follow these steps in order; each one depends on the one before it.

1. Soak the rags for a week.
2. Beat them into pulp with a hollander beater until the fibres are fine and even.
3. Pour the pulp into the vat.

After pressing, the sheets are hung in a loft. A well-known rule says that a sheet dried too fast \
will cockle.

<!-- page 3 -->

Paper outlasts most of the media that came after it when it is kept dry and away from light.

### Care and storage

Store sheets flat in acid-free folders, away from heat, damp and sunlight, and handle them with \
clean, dry hands.

\\# 5 is the grade of the finest rag paper.
"""


def test_born_digital_pdf_becomes_headings_paragraphs_lists_and_page_markers(tmp_path: Path) -> None:
    path = tmp_path / "guide.pdf"
    path.write_bytes(pdf_bytes(GUIDE))
    result = document_result(path)
    assert HEADER in result["pages"][0]["text"]  # the running lines are in the result ...
    assert "Page 3 of 3" in result["pages"][2]["text"]
    assert to_markdown(result) == GUIDE_MARKDOWN  # ... and not in the Markdown


# -- results written out by hand: lines as an OCR engine gives them -----------------------------

PAGE_W, PAGE_H = 1240, 1754  # A4 at 150 dpi
LINE_H = 30.0  # px, body line height
PITCH = 36.0  # px between line tops


def line(
    text: str, top: float, *, x: float = 150.0, width: float = 900.0, height: float = LINE_H
) -> dict[str, Any]:
    """One line of ``result.json``: its text and quad box (TL, TR, BR, BL)."""
    x1, y1 = x + width, top + height
    return {"text": text, "confidence": 0.9, "box": [[x, top], [x1, top], [x1, y1], [x, y1]]}


def column(texts: list[str], *, top: float = 300.0, **kw: Any) -> list[dict[str, Any]]:
    """Lines one under the other at the body's line pitch."""
    return [line(text, top + i * PITCH, **kw) for i, text in enumerate(texts)]


def result_of(*pages: list[dict[str, Any]], failed: tuple[int, ...] = ()) -> dict[str, Any]:
    """A document result whose page N has the N-th list of lines (none for ``failed`` pages)."""
    out = []
    for number, lines in enumerate(pages, start=1):
        status = "failed" if number in failed else "done"
        text = "\n".join(ln["text"] for ln in lines)
        out.append({"page_no": number, "status": status, "text": text, "width": PAGE_W, "height": PAGE_H,
                    "lines": [] if number in failed else lines})  # fmt: skip
    return {"pages": out}


def test_line_end_hyphens_are_undone_only_before_a_lowercase_word() -> None:
    lines = column(
        [
            "A short note on exam-",
            "ple words: the Franco-",
            "German border, a well-",
            "known case, a soft hyphen\u00ad",
            "ated word, the COVID-",
            "19 years; well-known again.",
        ]
    )
    assert to_markdown(result_of(lines)) == (
        "<!-- page 1 -->\n\nA short note on example words: the Franco-German border, a well-known case, "
        "a soft hyphenated word, the COVID-19 years; well-known again.\n"
    )


def test_lone_page_numbers_at_top_and_bottom_are_dropped_even_on_one_page() -> None:
    lines = [
        line("iv", 40, x=600, width=40),
        *column(["Chapter text that stays.", "3", "Page 3 of 10"], top=300),
        line("- 3 -", PAGE_H - 70, x=580, width=80),
        line("Running footer once", PAGE_H - 110, width=400),
    ]
    markdown = to_markdown(result_of(lines))
    assert markdown == "<!-- page 1 -->\n\nChapter text that stays. 3 Page 3 of 10\n\nRunning footer once\n"


def test_running_lines_go_when_on_half_the_pages() -> None:
    pages = [
        [
            line("The Quarterly, issue 7", 50, width=500),
            *column([f"Body of page {n}."]),
            line(f"{n}", 1680, x=600, width=30),
        ]
        for n in range(1, 4)
    ]
    pages.append([*column(["A page without the header."]), line("Set in the bottom band", 1650, width=400)])
    markdown = to_markdown(result_of(*pages))
    assert "Quarterly" not in markdown
    assert "Set in the bottom band" in markdown  # on one page of four: not a running line
    assert [ln for ln in markdown.splitlines() if ln and not ln.startswith("<!--")] == [
        "Body of page 1.", "Body of page 2.", "Body of page 3.", "A page without the header.",
        "Set in the bottom band",
    ]  # fmt: skip


def test_block_starts_that_read_as_markdown_are_escaped() -> None:
    texts = ["> not a quote.", "+ not a list.", "2024. A year.", "<b> is a tag.", "=== not a rule."]
    pages = [[line(text, 300 + 100 * i) for i, text in enumerate(texts)]]
    assert to_markdown(result_of(*pages)) == (
        "<!-- page 1 -->\n\n\\> not a quote.\n\n\\+ not a list.\n\n2024\\. A year.\n\n"
        "\\<b> is a tag.\n\n\\=== not a rule.\n"
    )


def test_columns_indents_and_gaps_start_paragraphs() -> None:
    left = column(["The left column ends", "its paragraph here."], x=100, width=480)
    right = column(["The right column starts", "a new one."], x=660, width=480)
    indented = column(
        ["    An indented first line", "runs on at the margin and ends.", "    Then a new one starts."],
        top=500,
    )
    indented[0] = line(indented[0]["text"].strip(), 500, x=200, width=800)
    indented[2] = line(indented[2]["text"].strip(), 500 + 2 * PITCH, x=200, width=500)
    gapped = column(["After a gap of a whole line."], top=500 + 4 * PITCH)
    markdown = to_markdown(result_of([*left, *right, *indented, *gapped]))
    assert markdown.split("\n\n")[1:] == [
        "The left column ends its paragraph here.",
        "The right column starts a new one.",
        "An indented first line runs on at the margin and ends.",
        "Then a new one starts.",
        "After a gap of a whole line.\n",
    ]


def test_lists_with_letters_and_continuation_lines() -> None:
    lines = column(
        ["Options:", "a) the first, which runs", "on here", "b) the second.", "• a bullet", "- a dash"],
        top=300,
    )
    lines[2] = line("on here", 300 + 2 * PITCH, x=190, width=300)
    assert to_markdown(result_of(lines)) == (
        "<!-- page 1 -->\n\nOptions:\n\n- a) the first, which runs on here\n- b) the second.\n- a bullet\n"
        "- a dash\n"
    )


def test_failed_page_keeps_its_marker() -> None:
    pages = [column(["First page."]), [], column(["Third page."])]
    assert to_markdown(result_of(*pages, failed=(2,))) == (
        "<!-- page 1 -->\n\nFirst page.\n\n<!-- page 2: failed -->\n\n<!-- page 3 -->\n\nThird page.\n"
    )


def test_heading_sizes_are_relative_to_the_body() -> None:
    lines = [
        line("Title", 200, width=300, height=LINE_H * 1.8),
        line("Section", 280, width=250, height=LINE_H * 1.3),
        *column(["Body text long enough to be a paragraph line.", "More body text."], top=340),
    ]
    assert to_markdown(result_of(lines)) == (
        "<!-- page 1 -->\n\n# Title\n\n## Section\n\nBody text long enough to be a paragraph line. More body text.\n"
    )


def test_ocr_scan_paragraphs_set_without_space_between_them() -> None:
    # tesseract's phototest: two paragraphs, no gap or indent between them, only a short line.
    engine = get_engine(ExplicitSettings(ocr_engine="onnx", ocr_threads=2), ("en",))
    with PILImage.open(SCANS / "tt_phototest.tif") as image:
        page = recognize_page(engine, np.asarray(image.convert("RGB")), min_confidence=0.5)
    result = aggregate.aggregate_document(_document(), [_page(1, page.text, aggregate.page_to_json(page))])
    first, second = (" ".join(p.split()) for p in (SCANS / "tt_phototest.gt.txt").read_text().split("\n\n"))
    assert to_markdown(result.data) == f"<!-- page 1 -->\n\n{first}\n\n{second}\n"
