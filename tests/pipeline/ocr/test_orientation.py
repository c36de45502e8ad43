"""Orientation geometry without a model: box shapes, rotated boxes, skew, deskew."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.ocr.orientation import (
    Orientation,
    deskew,
    detect,
    is_sideways,
    rotate,
    rotate_quads,
    skew_of,
    upright,
    upright_transform,
)


def _quad(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def test_sideways_when_long_boxes_run_vertically() -> None:
    wide = np.array([_quad(10, 10, 300, 30), _quad(10, 40, 280, 60)], dtype=np.float32)
    tall = np.array([_quad(10, 10, 30, 300), _quad(40, 10, 60, 280), _quad(70, 10, 90, 40)], dtype=np.float32)
    assert not is_sideways(wide)
    assert is_sideways(tall)
    assert not is_sideways(np.zeros((0, 4, 2), dtype=np.float32))


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_rotated_quads_follow_the_rotated_image(rotation: int) -> None:
    image = np.zeros((50, 80, 3), dtype=np.uint8)
    image[5:15, 10:40] = 255  # one bright "line"
    quads = np.array([_quad(10, 5, 39, 14)], dtype=np.float32)
    turned = rotate(image, rotation)
    (moved,) = rotate_quads(quads, rotation, image.shape[:2])
    x0, y0 = moved.min(axis=0).astype(int)
    x1, y1 = moved.max(axis=0).astype(int)
    assert turned[y0 : y1 + 1, x0 : x1 + 1].min() == 255  # the box still covers the bright pixels
    assert int(turned[..., 0].sum()) == int(turned[y0 : y1 + 1, x0 : x1 + 1, 0].sum())
    assert moved[0][0] <= moved[1][0] and moved[0][1] <= moved[3][1]  # corner 0 is top-left again


def test_skew_is_the_median_angle_of_long_lines() -> None:
    angle = np.radians(2.0)
    quads = []
    for i in range(5):
        x0, y0, length, height = 10.0, 50.0 + 30 * i, 400.0, 20.0
        dx, dy = length * np.cos(angle), -length * np.sin(angle)  # rising to the right
        quads.append([[x0, y0], [x0 + dx, y0 + dy], [x0 + dx, y0 + dy + height], [x0, y0 + height]])
    assert skew_of(np.array(quads, dtype=np.float32)) == pytest.approx(2.0, abs=0.01)
    assert skew_of(np.array([_quad(0, 0, 20, 20)], dtype=np.float32)) == 0.0  # no long line: no opinion


def test_deskew_grows_the_canvas_and_ignores_tiny_angles() -> None:
    image = np.full((100, 200, 3), 255, dtype=np.uint8)
    assert deskew(image, 0.1) is image
    turned = deskew(image, 5.0)
    assert turned.shape[0] > 100 and turned.shape[1] > 200
    assert turned.dtype == np.uint8 and turned.min() == 255  # background filled, not black corners


def test_engines_without_orientation_get_pages_as_they_come() -> None:
    assert detect(object(), np.zeros((4, 4, 3), dtype=np.uint8)) == Orientation()


@pytest.mark.parametrize(("rotation", "skew"), [(0, 0.0), (90, 0.0), (180, 2.5), (270, -4.0), (90, 1.2)])
def test_upright_transform_follows_the_pixels_of_the_upright_image(rotation: int, skew: float) -> None:
    # A dot on a page, turned upright as the OCR turns it: the transform says where it went, so
    # OCR boxes can be taken back onto the page (the searchable PDF's text layer relies on it).
    height, width = 300, 200
    image = np.full((height, width, 3), 255, dtype=np.uint8)
    image[40:46, 150:156] = 0  # dot centred at (153, 43)
    turned = upright(image, Orientation(rotation=rotation, skew=skew))
    ys, xs = np.nonzero(turned[:, :, 0] < 128)
    found = np.array([xs.mean() + 0.5, ys.mean() + 0.5])
    matrix = upright_transform(width, height, rotation, skew)
    expected = (matrix @ np.array([153.0, 43.0, 1.0]))[:2]
    assert np.abs(found - expected).max() < 1.5, (found, expected)
    back = np.linalg.inv(matrix) @ np.array([*found, 1.0])
    assert np.abs(back[:2] - [153.0, 43.0]).max() < 1.5
