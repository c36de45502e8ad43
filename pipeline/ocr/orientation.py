"""Page orientation (0/90/180/270°) and small-angle skew, and turning a page upright.

Engines that can tell orientation cheaply implement ``OrientationDetector`` (the onnx engine
from its detector's line boxes and its 0/180° line classifier; Tesseract from its OSD mode).
This module holds the engine-free parts: the geometry of line boxes, and the image transforms.
An engine without the method gets pages as they come.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Protocol, runtime_checkable

import cv2
import numpy as np
import numpy.typing as npt

from pipeline.ocr.base import Image

MAX_SKEW = 10.0  # degrees: larger angles are layout (rotated stamps, tables), not scan skew
MIN_DESKEW = 0.3  # degrees: below this a rotation blurs more than it straightens
ELONGATED = 2.0  # long side / short side for a box to say which way its text runs
SKEW_ELONGATED = 4.0  # only clearly long lines measure skew: short words give noisy angles


class Orientation(NamedTuple):
    """How to turn a page upright: ``rotation`` degrees clockwise, then deskew by ``skew``."""

    rotation: int = 0  # 0, 90, 180 or 270, clockwise
    skew: float = 0.0  # degrees the text lines rise to the right (counter-clockwise) once upright
    confidence: float = 0.0  # 0..1, how sure the 0/180° decision is


@runtime_checkable
class OrientationDetector(Protocol):
    """An engine that can say how a page is turned."""

    def detect_orientation(self, image: Image) -> Orientation:
        """Orientation of ``image`` (an RGB page)."""
        ...


def detect(engine: object, image: Image) -> Orientation:
    """The engine's orientation for ``image``, or upright when it cannot tell."""
    if isinstance(engine, OrientationDetector):
        return engine.detect_orientation(image)
    return Orientation()


def is_sideways(quads: npt.NDArray[np.float32]) -> bool:
    """True when most elongated line boxes run vertically (a page turned 90° or 270°)."""
    if len(quads) == 0:
        return False
    widths = np.linalg.norm(quads[:, 1] - quads[:, 0], axis=1)
    heights = np.linalg.norm(quads[:, 3] - quads[:, 0], axis=1)
    # Weight by length: one long line says more than a few single letters.
    vertical = float(np.sum(np.where(heights > ELONGATED * widths, heights, 0.0)))
    horizontal = float(np.sum(np.where(widths > ELONGATED * heights, widths, 0.0)))
    return vertical > horizontal


def rotate_quads(
    quads: npt.NDArray[np.float32], rotation: int, size: tuple[int, int]
) -> npt.NDArray[np.float32]:
    """Quads of a (height, width) image mapped onto that image turned ``rotation`` degrees clockwise."""
    height, width = size
    x, y = quads[..., 0], quads[..., 1]
    if rotation % 360 == 90:
        out = np.stack([height - 1 - y, x], axis=-1)
    elif rotation % 360 == 180:
        out = np.stack([width - 1 - x, height - 1 - y], axis=-1)
    elif rotation % 360 == 270:
        out = np.stack([y, width - 1 - x], axis=-1)
    else:
        return quads.copy()
    # Re-label corners so that index 0 is again the top-left one.
    shift = {90: 3, 180: 2, 270: 1}[rotation % 360]
    return np.roll(out, -shift, axis=1).astype(np.float32)


def skew_of(quads: npt.NDArray[np.float32]) -> float:
    """Median angle (degrees, counter-clockwise) of the long, horizontal line boxes; 0 if none."""
    if len(quads) == 0:
        return 0.0
    direction = quads[:, 1] - quads[:, 0]
    lengths = np.linalg.norm(direction, axis=1)
    heights = np.linalg.norm(quads[:, 3] - quads[:, 0], axis=1)
    long_lines = lengths > SKEW_ELONGATED * heights
    if not long_lines.any():
        return 0.0
    angles = np.degrees(np.arctan2(-direction[long_lines, 1], direction[long_lines, 0]))
    angle = float(np.median(angles))
    return angle if abs(angle) <= MAX_SKEW else 0.0


def rotate(image: Image, rotation: int) -> Image:
    """``image`` turned ``rotation`` (a multiple of 90) degrees clockwise."""
    turns = (rotation // 90) % 4
    if turns == 0:
        return image
    return np.ascontiguousarray(np.rot90(image, k=-turns))


def _deskew_matrix(width: int, height: int, skew: float) -> tuple[npt.NDArray[np.float64], int, int]:
    """The 2x3 affine that deskews a ``width`` x ``height`` image by ``skew``, and the canvas it needs."""
    rad = math.radians(abs(skew))
    new_w = math.ceil(width * math.cos(rad) + height * math.sin(rad))
    new_h = math.ceil(height * math.cos(rad) + width * math.sin(rad))
    # OpenCV's positive angle is counter-clockwise: undo a counter-clockwise skew with -skew.
    matrix = np.asarray(cv2.getRotationMatrix2D((width / 2, height / 2), -skew, 1.0), dtype=np.float64)
    matrix[0, 2] += (new_w - width) / 2
    matrix[1, 2] += (new_h - height) / 2
    return matrix, new_w, new_h


def upright_transform(width: int, height: int, rotation: int, skew: float) -> npt.NDArray[np.float64]:
    """The 3x3 matrix taking points of a ``width`` x ``height`` image to the page ``upright`` makes.

    ``rotation`` and ``skew`` as a PageResult reports them (``skew`` 0 when none was applied).
    Points are continuous pixel coordinates, y down; the inverse maps OCR boxes back onto the image.
    """
    turns = (rotation // 90) % 4
    turn = {
        0: [[1, 0, 0], [0, 1, 0]],
        1: [[0, -1, height], [1, 0, 0]],  # 90 clockwise: (x, y) -> (height - y, x)
        2: [[-1, 0, width], [0, -1, height]],
        3: [[0, 1, 0], [-1, 0, width]],  # 270 clockwise: (x, y) -> (y, width - x)
    }[turns]
    out = np.vstack([np.array(turn, dtype=np.float64), [0.0, 0.0, 1.0]])
    if abs(skew) >= MIN_DESKEW:
        turned_w, turned_h = (height, width) if turns % 2 else (width, height)
        matrix, _, _ = _deskew_matrix(turned_w, turned_h, skew)
        out = np.vstack([matrix, [0.0, 0.0, 1.0]]) @ out
    return out


def deskew(image: Image, skew: float) -> Image:
    """``image`` turned back by ``skew`` degrees on a canvas grown so no corner is cut off."""
    if abs(skew) < MIN_DESKEW:
        return image
    height, width = image.shape[:2]
    matrix, new_w, new_h = _deskew_matrix(width, height, skew)
    background = tuple(
        int(v)
        for v in np.median(image[:: max(1, height // 64), :: max(1, width // 64)].reshape(-1, 3), axis=0)
    )
    out = cv2.warpAffine(
        image,
        matrix,
        (new_w, new_h),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=background,
    )
    return out.astype(np.uint8, copy=False)


def upright(image: Image, orientation: Orientation) -> Image:
    """``image`` rotated and deskewed as ``orientation`` says."""
    return deskew(rotate(image, orientation.rotation), orientation.skew)
