"""Reading order on synthetic line boxes: columns, spanning headings, captions, footers, fragments."""

from __future__ import annotations

from pipeline.ocr.base import Line
from pipeline.ocr.layout import reading_order

LINE_H = 20  # px
STEP = 30  # px between line tops


def line(text: str, x0: float, y0: float, x1: float, height: float = LINE_H, conf: float = 0.9) -> Line:
    return Line(text=text, confidence=conf, box=((x0, y0), (x1, y0), (x1, y0 + height), (x0, y0 + height)))


def column(prefix: str, x0: float, x1: float, top: float, count: int) -> list[Line]:
    return [line(f"{prefix}{i}", x0, top + i * STEP, x1) for i in range(count)]


def texts(lines: tuple[Line, ...]) -> list[str]:
    return [ln.text for ln in lines]


def test_two_columns_are_read_one_after_the_other() -> None:
    left, right = column("L", 50, 400, 100, 6), column("R", 450, 800, 100, 6)
    shuffled = [right[2], left[4], left[0], right[0], left[1], right[5], left[2], right[1], left[3]]
    shuffled += [right[3], left[5], right[4]]
    assert texts(reading_order(shuffled)) == [f"L{i}" for i in range(6)] + [f"R{i}" for i in range(6)]


def test_heading_across_both_columns_comes_first_and_a_full_width_rule_splits_sections() -> None:
    heading = line("Title", 200, 20, 650, height=40)
    top_left, top_right = column("a", 50, 400, 100, 3), column("b", 450, 800, 100, 3)
    middle = line("Section two spans the page", 50, 200, 800)
    low_left, low_right = column("c", 50, 400, 250, 2), column("d", 450, 800, 250, 2)
    lines = [*low_right, *top_right, middle, *low_left, heading, *top_left]
    expected = [
        "Title",
        "a0",
        "a1",
        "a2",
        "b0",
        "b1",
        "b2",
        "Section two spans the page",
        "c0",
        "c1",
        "d0",
        "d1",
    ]
    assert texts(reading_order(lines)) == expected


def test_caption_across_the_gutter_goes_after_the_columns() -> None:
    left, right = column("L", 50, 400, 100, 10), column("R", 450, 800, 100, 10)
    # Columns narrow around a captioned picture in the middle, as on the UNLV magazine page.
    for i in (4, 5):
        left[i] = line(f"L{i}", 50, 100 + i * STEP, 330)
        right[i] = line(f"R{i}", 520, 100 + i * STEP, 800)
    caption = [line("CAPTION", 360, 100 + 4 * STEP, 490), line("TEXT", 380, 100 + 5 * STEP, 470)]
    order = texts(reading_order([*caption, *right, *left]))
    assert order == [f"L{i}" for i in range(10)] + [f"R{i}" for i in range(10)] + ["CAPTION", "TEXT"]


def test_page_footer_goes_last() -> None:
    left, right = column("L", 50, 400, 100, 5), column("R", 450, 800, 100, 5)
    footer = line("54 TRAVEL", 50, 100 + 5 * STEP + 3 * LINE_H, 300)
    assert texts(reading_order([footer, *right, *left]))[-1] == "54 TRAVEL"


def test_fragments_of_one_printed_line_are_merged() -> None:
    lines = [
        line("world!", 170, 101, 260, conf=0.6),
        line("Hello", 50, 100, 150, conf=0.9),
        line("Next", 50, 130, 120),
    ]
    ordered = reading_order(lines)
    assert texts(ordered) == ["Hello world!", "Next"]
    merged = ordered[0]
    assert merged.box[0] == (50.0, 100.0) and merged.box[2] == (260.0, 121.0)
    assert 0.6 < merged.confidence < 0.9


def test_empty_and_single() -> None:
    assert reading_order([]) == ()
    only = line("x", 0, 0, 10)
    assert reading_order([only]) == (only,)
