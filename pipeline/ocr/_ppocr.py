"""PP-OCR inference on onnxruntime: DB text detection, line crops, CTC recognition, 0/180 classifier.

Thin pre/post-processing of our own around the PaddleOCR-exported ONNX graphs (the same maths as
PaddleOCR's ``DetResizeForTest``/``DBPostProcess``/``CTCLabelDecode``), so that we control memory
(onnxruntime arenas off, bounded input sizes and batches) and nothing is written next to the
models. Images here are BGR uint8, the channel order the PaddleOCR models were trained on.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import numpy.typing as npt
import onnxruntime as ort

Quads = npt.NDArray[np.float32]  # shape (n, 4, 2): TL, TR, BR, BL corners per text line

DET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32) * 255.0
DET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32) * 255.0
DET_STRIDE = 32  # px: the DB network downsamples by 32, inputs must be multiples of it
DET_MIN_SIDE = 3  # px on the probability map: smaller candidates are noise
DET_MAX_CANDIDATES = 3000  # contours per page considered
DET_TILE_ROWS = 384  # px (detector input): rows computed per strip; a multiple of DET_STRIDE
DET_TILE_MARGIN = 96  # px of context above and below a strip; a multiple of DET_STRIDE

REC_HEIGHT = 48  # px: recogniser input height when the model does not fix it (PP-OCRv5/v6 do: 48)
REC_MIN_WIDTH = 320  # px: narrower batches are padded, as in training
# Columns (px at the model's input height) per recognition batch. The output is (batch, width/8,
# classes) float32: 2048 columns of an 18,710-class model cost ~19 MB, and PP-OCRv6 small's
# activations several times that. Batches are bounded by width, not by count, to bound peak
# memory: at 4096 columns a worker peaked at 450-550 MB on the typewriter + UNLV pages, at 2048
# at 410-450 MB, for no more CPU (smaller batches pad less).
REC_BATCH_COLUMNS = 2048
REC_MAX_BATCH = 16

CLS_SHAPE = (48, 192)  # px (height, width): text line orientation classifier input


@dataclass(frozen=True, slots=True)
class DetParams:
    """DB post-processing thresholds: each detector is trained (and published) with its own."""

    bin_thresh: float = 0.3  # probability above which a map pixel is text
    box_thresh: float = 0.6  # mean probability a candidate box needs to be kept
    unclip_ratio: float = 1.5  # how far DB's shrunk text kernels are grown back


_sessions: dict[tuple[Path, int, bool], ort.InferenceSession] = {}
_sessions_lock = threading.Lock()


def shared_session(path: Path, *, threads: int, use_gpu: bool) -> ort.InferenceSession:
    """One session per model file per process: engines for other languages reuse it.

    ``InferenceSession.run`` is thread-safe, so sharing costs nothing and saves ~40 MB per
    extra language set a worker sees.
    """
    key = (path.resolve(), threads, use_gpu)
    with _sessions_lock:
        session = _sessions.get(key)
        if session is None:
            session = _sessions[key] = make_session(path, threads=threads, use_gpu=use_gpu)
        return session


def make_session(path: Path, *, threads: int, use_gpu: bool) -> ort.InferenceSession:
    """An inference session tuned for low resident memory on CPU."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # The arena and memory patterns keep the largest page's buffers for the life of the process;
    # without them peak RSS follows the current page (measured: see benchmarks/ocr_quality.py).
    options.enable_cpu_mem_arena = False
    options.enable_mem_pattern = False
    options.log_severity_level = 3  # errors only: onnxruntime warns at every load otherwise
    # Idle intra-op threads sleep instead of spinning. Spinning burns a core each while another
    # page's session (a second worker thread, a second process) waits for one: `pagemill ocr`
    # (2 worker threads x 2 onnxruntime threads on 2 cores) took 17.7 s wall / 24.3 CPU-s for 8
    # dense pages spinning, 10.5 s / 15.6 CPU-s not (cascade profile, one run).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    providers = ["CPUExecutionProvider"]
    if use_gpu and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    return ort.InferenceSession(str(path), sess_options=options, providers=providers)


def detect(
    session: ort.InferenceSession, image: np.ndarray, *, limit_side: int, params: DetParams = DetParams()
) -> Quads:
    """Text line quadrilaterals in ``image`` coordinates, from a DB detector."""
    height, width = image.shape[:2]
    scale = min(1.0, limit_side / max(height, width))
    in_h = max(DET_STRIDE, round(height * scale / DET_STRIDE) * DET_STRIDE)
    in_w = max(DET_STRIDE, round(width * scale / DET_STRIDE) * DET_STRIDE)
    resized = cv2.resize(image, (in_w, in_h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    prob = _probability_map(session, resized)
    quads = _boxes_from_map(prob, params)
    if len(quads) == 0:
        return quads
    quads[:, :, 0] = np.clip(quads[:, :, 0] * (width / in_w), 0, width - 1)
    quads[:, :, 1] = np.clip(quads[:, :, 1] * (height / in_h), 0, height - 1)
    sides = (
        np.linalg.norm(quads[:, 1] - quads[:, 0], axis=1),
        np.linalg.norm(quads[:, 3] - quads[:, 0], axis=1),
    )
    return np.asarray(quads[(sides[0] > 3) & (sides[1] > 3)], dtype=np.float32)


def _probability_map(session: ort.InferenceSession, resized: np.ndarray) -> np.ndarray:
    """DB text probability per pixel, computed in horizontal strips to bound activation memory.

    The network's activations at the input resolution dominate peak memory (~150 MB for a
    1280x1000 input); strips with DET_TILE_MARGIN rows of context on each side give the same
    map (only their core rows are kept) at a third of that.
    """
    name = session.get_inputs()[0].name
    height = resized.shape[0]
    prob = np.empty(resized.shape[:2], dtype=np.float32)
    for core in range(0, height, DET_TILE_ROWS):
        top = max(0, core - DET_TILE_MARGIN)
        bottom = min(height, core + DET_TILE_ROWS + DET_TILE_MARGIN)
        if height - bottom < DET_STRIDE:  # a last sliver would be one stride tall: take it now
            bottom = height
        strip = resized[top:bottom].astype(np.float32)
        blob = ((strip - DET_MEAN) / DET_STD).transpose(2, 0, 1)[np.newaxis]
        out = session.run(None, {name: np.ascontiguousarray(blob)})[0][0, 0]
        end = min(height, core + DET_TILE_ROWS) if bottom < height else height
        prob[core:end] = out[core - top : end - top]
        if end == height:
            break
    return prob


def _boxes_from_map(prob: np.ndarray, params: DetParams) -> Quads:
    bitmap = (prob > params.bin_thresh).astype(np.uint8)
    contours, _ = cv2.findContours(bitmap, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    quads: list[np.ndarray] = []
    map_h, map_w = prob.shape
    for contour in contours[:DET_MAX_CANDIDATES]:
        (cx, cy), (w, h), angle = cv2.minAreaRect(contour)
        if min(w, h) < DET_MIN_SIDE:
            continue
        x, y, bw, bh = cv2.boundingRect(contour)
        mask = np.zeros((bh, bw), dtype=np.uint8)
        cv2.fillPoly(mask, [contour.reshape(-1, 2) - (x, y)], 1)
        if cv2.mean(prob[y : y + bh, x : x + bw], mask)[0] < params.box_thresh:
            continue
        # Unclip: grow the rectangle by area * ratio / perimeter on every side, as DB does.
        grow = w * h * params.unclip_ratio / (2 * (w + h))
        w, h = w + 2 * grow, h + 2 * grow
        if min(w, h) < DET_MIN_SIDE + 2:
            continue
        points = cv2.boxPoints(((cx, cy), (w, h), angle))
        quads.append(_order_corners(points))
    if not quads:
        return np.zeros((0, 4, 2), dtype=np.float32)
    out = np.stack(quads).astype(np.float32)
    out[:, :, 0] = np.clip(out[:, :, 0], 0, map_w)
    out[:, :, 1] = np.clip(out[:, :, 1], 0, map_h)
    return out


def _order_corners(points: np.ndarray) -> np.ndarray:
    """TL, TR, BR, BL order for a rectangle's four corners."""
    by_x = points[np.argsort(points[:, 0])]
    left, right = by_x[:2], by_x[2:]
    tl, bl = left[np.argsort(left[:, 1])]
    tr, br = right[np.argsort(right[:, 1])]
    return np.array([tl, tr, br, bl], dtype=np.float32)


def crop_line(image: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """The text line under ``quad``, warped to an upright rectangle."""
    width = int(max(np.linalg.norm(quad[0] - quad[1]), np.linalg.norm(quad[3] - quad[2])))
    height = int(max(np.linalg.norm(quad[0] - quad[3]), np.linalg.norm(quad[1] - quad[2])))
    width, height = max(width, 1), max(height, 1)
    # Warp from the bounding rectangle only: OpenCV would otherwise touch the whole page per line.
    x0, y0 = np.floor(quad.min(axis=0)).astype(int).clip(0)
    x1, y1 = np.ceil(quad.max(axis=0)).astype(int) + 1
    region = np.ascontiguousarray(image[y0:y1, x0:x1])
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform((quad - (x0, y0)).astype(np.float32), target)
    crop = cv2.warpPerspective(
        region, matrix, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
    )
    if height >= 1.5 * width:  # vertical text: read it turned
        crop = np.ascontiguousarray(np.rot90(crop))
    return crop


def _rec_input(crop: np.ndarray, height: int, width: int) -> np.ndarray:
    h, w = crop.shape[:2]
    resized_w = min(width, math.ceil(height * w / h))
    resized = cv2.resize(crop, (resized_w, height), interpolation=cv2.INTER_LINEAR)
    out = np.zeros((3, height, width), dtype=np.float32)
    out[:, :, :resized_w] = resized.transpose(2, 0, 1).astype(np.float32) / 127.5 - 1.0
    return out


def _batches(widths: Sequence[int]) -> list[list[int]]:
    """Indices grouped by similar width (sorted), each batch within REC_BATCH_COLUMNS."""
    order = sorted(range(len(widths)), key=lambda i: widths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        batch_width = max(REC_MIN_WIDTH, widths[index])  # sorted: the newest is the widest
        if current and (len(current) + 1) * batch_width > REC_BATCH_COLUMNS or len(current) >= REC_MAX_BATCH:
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


class Reading(NamedTuple):
    """One line as a recogniser read it."""

    text: str
    confidence: float  # mean probability of the emitted characters; 0.0 for an empty line
    # Per character of ``text``: where along the crop it was read, as (start, end) fractions of
    # the crop's width (CTC time steps: each covers a fixed number of input columns), and its
    # probability. Word boxes are made from them.
    spans: tuple[tuple[float, float], ...] = ()
    char_confidences: tuple[float, ...] = ()
    step: float = 0.0  # one time step as a fraction of the crop's width


def input_height(session: ort.InferenceSession) -> int:
    """The recogniser's input height from its graph (NCHW, H fixed at export), else REC_HEIGHT."""
    shape = session.get_inputs()[0].shape
    return shape[2] if len(shape) == 4 and isinstance(shape[2], int) and shape[2] > 0 else REC_HEIGHT


def recognize(
    session: ort.InferenceSession,
    crops: Sequence[np.ndarray],
    charset: Sequence[str],
    *,
    allowed: npt.NDArray[np.int64] | None = None,
    height: int = REC_HEIGHT,
) -> list[Reading]:
    """A reading per crop, by CTC greedy decoding in width-bounded batches.

    ``allowed`` (class indices, blank included) restricts decoding to a language's characters:
    the model's best guess among them replaces look-alikes from other scripts (``，`` for ``,``).
    ``height`` is the model's input height (``input_height``); crops keep their aspect ratio.
    """
    widths = [max(1, math.ceil(height * c.shape[1] / c.shape[0])) for c in crops]
    results: list[Reading] = [Reading("", 0.0)] * len(crops)
    name = session.get_inputs()[0].name
    for batch in _batches(widths):
        width = max(REC_MIN_WIDTH, max(widths[i] for i in batch))
        blob = np.stack([_rec_input(crops[i], height, width) for i in batch])
        probs = session.run(None, {name: blob})[0]
        if allowed is not None:
            probs = probs[:, :, allowed]
        best = probs.argmax(axis=2)
        best_p = np.take_along_axis(probs, best[:, :, np.newaxis], axis=2)[:, :, 0]
        steps = probs.shape[1]
        del probs
        if allowed is not None:
            best = allowed[best]
        for row, index in enumerate(batch):
            # Input columns per time step, as a fraction of the columns the crop itself filled.
            step = (width / steps) / min(width, widths[index])
            results[index] = _ctc_decode(best[row], best_p[row], charset, step)
    return results


def _ctc_decode(best: np.ndarray, best_p: np.ndarray, charset: Sequence[str], step: float = 0.0) -> Reading:
    """Greedy CTC: runs of one class collapse to one character, blanks (class 0) are dropped."""
    starts = np.flatnonzero(np.r_[True, best[1:] != best[:-1]])
    ends = np.r_[starts[1:], len(best)]
    keep = best[starts] != 0
    starts, ends = starts[keep], ends[keep]
    chars = [charset[i] for i in best[starts]]
    probs = best_p[starts]
    conf = float(probs.mean()) if len(chars) else 0.0
    spans = tuple((min(1.0, a * step), min(1.0, b * step)) for a, b in zip(starts.tolist(), ends.tolist(), strict=True))
    return Reading("".join(chars), conf, spans, tuple(probs.tolist()), step)


def classify_180(session: ort.InferenceSession, crops: Sequence[np.ndarray]) -> np.ndarray:
    """Probability that each line crop is upside down."""
    if not crops:
        return np.zeros(0, dtype=np.float32)
    cls_h, cls_w = CLS_SHAPE
    blob = np.zeros((len(crops), 3, cls_h, cls_w), dtype=np.float32)
    for row, crop in enumerate(crops):
        w = min(cls_w, math.ceil(cls_h * crop.shape[1] / crop.shape[0]))
        resized = cv2.resize(crop, (w, cls_h))
        blob[row, :, :, :w] = resized.transpose(2, 0, 1).astype(np.float32) / 127.5 - 1.0
    probs = session.run(None, {session.get_inputs()[0].name: blob})[0]
    return np.asarray(probs[:, 1], dtype=np.float32)


def load_charset(path: Path) -> list[str]:
    """The recogniser's classes: CTC blank, the dictionary lines, then space."""
    return _classes(path.read_text(encoding="utf-8"))


def metadata_charset(session: ort.InferenceSession) -> list[str] | None:
    """The classes from the model's own ``character`` metadata (RapidOCR's exports), or None."""
    text = session.get_modelmeta().custom_metadata_map.get("character")
    return _classes(text) if text else None


def _classes(text: str) -> list[str]:
    # One character per line. Not str.splitlines(): it would also split at \v, \f, \x1c-\x1e,
    # \x85, U+2028/2029, which a dictionary may list as characters; \r\n files are common.
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    return ["", *lines, " "]


def output_classes(session: ort.InferenceSession) -> int | None:
    """Classes per time step of a CTC recogniser (its output's last dimension), when fixed."""
    shape = session.get_outputs()[0].shape
    return shape[-1] if shape and isinstance(shape[-1], int) else None
