"""Documents as pages: sniff the type, count and size the pages, render page N as RGB pixels.

PDFs go through pypdfium2, images through Pillow (a multi-page TIFF is several pages). Every
limit (pages, pixels per page) is checked from headers before anything is decoded, and every
failure is a ``BadInputError`` whose reason says what is wrong and what to do.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

from pipeline.errors import (
    BadInputError,
    EncryptedDocumentError,
    LimitExceededError,
    UnreadableDocumentError,
)
from pipeline.ocr.base import Image
from pipeline.sniff import PDF_HEADER_SEARCH_BYTES, DocumentKind, sniff_type

# PDF user space unit: 1/72 inch, so render scale = dpi / 72.
PDF_POINTS_PER_INCH = 72
# EXIF/TIFF Orientation tag, and its values that swap width and height (transposes, 90° turns).
EXIF_ORIENTATION_TAG = 0x0112
EXIF_SWAPS_AXES = frozenset({5, 6, 7, 8})
# Pillow formats we accept for each image kind (Image.open is told, so no other decoder runs).
_PIL_FORMATS = {"png": ("PNG",), "jpeg": ("JPEG", "MPO"), "tiff": ("TIFF",), "webp": ("WEBP",)}

# PDFium is not thread-safe, not even across different documents: "It is not allowed to call
# pdfium functions simultaneously across different threads" (pypdfium2 docs, Python API,
# "Incompatibility with Threading"). Every pypdfium2 call in this process, including closing
# documents, runs under this one lock. Use processes, not threads, for parallel rendering.
_PDFIUM_LOCK = threading.Lock()
# Guards the one-way raise of Pillow's process-wide bomb limit (see _follow_pixel_limit).
_PILLOW_LIMIT_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class DocumentInfo:
    """What ``inspect_document`` found: type, page count, each page's (width, height) in pixels."""

    kind: DocumentKind
    page_count: int
    # Pixels at the inspected dpi for PDFs, native pixels (after EXIF orientation) for images.
    page_sizes: tuple[tuple[int, int], ...]


def inspect_document(path: Path, *, max_pages: int, max_page_pixels: int, dpi: int) -> DocumentInfo:
    """Type, page count and page sizes of ``path``, refusing what breaks a limit or cannot be read."""
    if dpi <= 0:
        raise ValueError(f"dpi must be positive, got {dpi}")
    kind = _sniff_file(path)
    if kind is DocumentKind.PDF:
        return _inspect_pdf(path, max_pages=max_pages, max_page_pixels=max_page_pixels, dpi=dpi)
    return _inspect_image(path, kind, max_pages=max_pages, max_page_pixels=max_page_pixels)


def render_page(path: Path, page_no: int, *, dpi: int, max_page_pixels: int) -> Image:
    """Page ``page_no`` (1-based) of ``path`` as an RGB uint8 array; PDFs are rendered at ``dpi``."""
    if dpi <= 0:
        raise ValueError(f"dpi must be positive, got {dpi}")
    kind = _sniff_file(path)
    if kind is DocumentKind.PDF:
        return _render_pdf_page(path, page_no, dpi=dpi, max_page_pixels=max_page_pixels)
    return _render_image_page(path, kind, page_no, max_page_pixels=max_page_pixels)


def _sniff_file(path: Path) -> DocumentKind:
    with path.open("rb") as fh:
        return sniff_type(fh.read(PDF_HEADER_SEARCH_BYTES))


def _check_page_count(count: int, *, max_pages: int, what: str) -> None:
    if count < 1:
        raise UnreadableDocumentError(f"the {what} has no pages; check that the right file was uploaded")
    if count > max_pages:
        raise LimitExceededError(
            f"the {what} has {count} pages, more than the limit of {max_pages} (PAGEMILL_MAX_PAGES); "
            "split it into smaller files"
        )


def _check_page_pixels(page_no: int, width: int, height: int, *, max_page_pixels: int, dpi: int | None) -> None:
    pixels = width * height
    if pixels > max_page_pixels:
        at = f" at {dpi} dpi" if dpi is not None else ""
        hint = "render at a lower dpi or shrink the page" if dpi is not None else "downscale the image"
        raise LimitExceededError(
            f"page {page_no} is {width}x{height} = {pixels} pixels{at}, more than the limit of "
            f"{max_page_pixels} pixels per page (PAGEMILL_MAX_PAGE_PIXELS); {hint}",
            page_no=page_no,
        )


def _check_page_no(page_no: int, page_count: int) -> None:
    if not 1 <= page_no <= page_count:
        raise BadInputError(
            f"page {page_no} does not exist: the document has {page_count} page(s), numbered from 1",
            page_no=page_no,
        )


# --- PDF (pypdfium2) ------------------------------------------------------------------------------


@contextmanager
def open_pdf(path: Path) -> Iterator[pdfium.PdfDocument]:
    """The open document, with the pdfium lock held until it is closed again."""
    with _PDFIUM_LOCK:
        try:
            document = pdfium.PdfDocument(path)
        except pdfium.PdfiumError as exc:
            raise _pdf_error(exc) from exc
        try:
            yield document
        finally:
            document.close()


def load_page(document: pdfium.PdfDocument, page_no: int) -> pdfium.PdfPage:
    """Page ``page_no`` (1-based) of an open document; UnreadableDocumentError when pdfium cannot load it."""
    try:
        return document[page_no - 1]
    except pdfium.PdfiumError as exc:
        raise UnreadableDocumentError(
            f"page {page_no} of the PDF cannot be read ({exc}); re-save the PDF and upload it again",
            page_no=page_no,
        ) from exc


def _pdf_error(exc: pdfium.PdfiumError) -> BadInputError:
    code = getattr(exc, "err_code", None)
    if code == pdfium_c.FPDF_ERR_PASSWORD:
        return EncryptedDocumentError(
            "the PDF is protected by a password; remove the password (for example by printing it "
            "to a new PDF) and upload it again"
        )
    if code == pdfium_c.FPDF_ERR_SECURITY:
        return EncryptedDocumentError(
            "the PDF uses an encryption scheme we cannot open; save it without encryption and upload it again"
        )
    return UnreadableDocumentError(
        f"the PDF cannot be read, it is truncated or corrupt ({exc}); upload the complete file again "
        "or re-save it with a PDF editor"
    )


def pdf_pixel_size(width_pt: float, height_pt: float, dpi: int) -> tuple[int, int]:
    # The same rounding pypdfium2's PdfPage.render uses for the bitmap size.
    scale = dpi / PDF_POINTS_PER_INCH
    return math.ceil(width_pt * scale), math.ceil(height_pt * scale)


def _inspect_pdf(path: Path, *, max_pages: int, max_page_pixels: int, dpi: int) -> DocumentInfo:
    sizes: list[tuple[int, int]] = []
    with open_pdf(path) as document:
        count = len(document)
        _check_page_count(count, max_pages=max_pages, what="PDF")
        for index in range(count):
            try:
                # Reads the page dictionary only (FPDF_GetPageSizeByIndexF), not the content.
                width_pt, height_pt = document.get_page_size(index)
            except pdfium.PdfiumError as exc:
                raise UnreadableDocumentError(
                    f"page {index + 1} of the PDF cannot be read ({exc}); re-save the PDF and upload it again",
                    page_no=index + 1,
                ) from exc
            width, height = pdf_pixel_size(width_pt, height_pt, dpi)
            if width < 1 or height < 1:
                raise UnreadableDocumentError(
                    f"page {index + 1} of the PDF has no area ({width_pt}x{height_pt} points); "
                    "re-save the PDF and upload it again",
                    page_no=index + 1,
                )
            _check_page_pixels(index + 1, width, height, max_page_pixels=max_page_pixels, dpi=dpi)
            sizes.append((width, height))
    return DocumentInfo(kind=DocumentKind.PDF, page_count=count, page_sizes=tuple(sizes))


def _render_pdf_page(path: Path, page_no: int, *, dpi: int, max_page_pixels: int) -> Image:
    with open_pdf(path) as document:
        _check_page_no(page_no, len(document))
        # Filled-in form fields are text the user wants read; pdfium draws them only after this
        # (and it must come before the page is loaded).
        document.init_forms()
        page = load_page(document, page_no)
        try:
            width, height = pdf_pixel_size(page.get_width(), page.get_height(), dpi)
            if width < 1 or height < 1:
                raise UnreadableDocumentError(
                    f"page {page_no} of the PDF has no area; re-save the PDF and upload it again",
                    page_no=page_no,
                )
            _check_page_pixels(page_no, width, height, max_page_pixels=max_page_pixels, dpi=dpi)
            # rev_byteorder: RGB instead of pdfium's native BGR; 3 bytes per pixel, no alpha,
            # on pdfium's default white background.
            bitmap = page.render(scale=dpi / PDF_POINTS_PER_INCH, rev_byteorder=True)
            try:
                # Copy out of pdfium's buffer (and drop any row padding) before it is freed.
                pixels = np.ascontiguousarray(bitmap.to_numpy(), dtype=np.uint8).copy()
            finally:
                bitmap.close()
        finally:
            page.close()
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise UnreadableDocumentError(f"page {page_no} rendered to an unexpected pixel layout {pixels.shape}")
    return pixels


# --- images (Pillow) -------------------------------------------------------------------------------


def _follow_pixel_limit(max_page_pixels: int) -> None:
    """Make sure Pillow's own bomb check never refuses what ``max_page_pixels`` allows.

    Pillow has one process-wide limit (``Image.MAX_IMAGE_PIXELS``, read inside ``Image.open``)
    and no per-call one. Our limit is checked explicitly on the header size before decoding, so
    Pillow's only needs to be at least as large: it is only ever raised, under a lock, never
    lowered, so concurrent callers with different limits cannot undo each other.
    """
    current = PILImage.MAX_IMAGE_PIXELS
    if current is None or current >= max_page_pixels:
        return
    with _PILLOW_LIMIT_LOCK:
        current = PILImage.MAX_IMAGE_PIXELS
        if current is not None and current < max_page_pixels:
            PILImage.MAX_IMAGE_PIXELS = max_page_pixels


@contextmanager
def _open_image(path: Path, kind: DocumentKind, *, max_page_pixels: int) -> Iterator[PILImage.Image]:
    """The image opened lazily (header only), with Pillow failures mapped to our errors."""
    _follow_pixel_limit(max_page_pixels)
    try:
        with PILImage.open(path, formats=_PIL_FORMATS[kind.value]) as image:
            yield image
    except PILImage.DecompressionBombError as exc:
        raise LimitExceededError(
            f"the {kind.value.upper()} image is too large to decode safely ({exc}); the limit is "
            f"{max_page_pixels} pixels per page (PAGEMILL_MAX_PAGE_PIXELS); downscale the image"
        ) from exc
    except UnidentifiedImageError as exc:
        raise UnreadableDocumentError(
            f"the file starts like a {kind.value.upper()} image but cannot be decoded; it is corrupt "
            "or truncated, upload the complete file again"
        ) from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        # Pillow reports truncated or corrupt data as OSError ("image file is truncated"),
        # SyntaxError (bad TIFF/PNG structure), ValueError (e.g. oversized PNG text chunks).
        raise UnreadableDocumentError(
            f"the {kind.value.upper()} image is corrupt or truncated ({exc}); upload the complete file again"
        ) from exc


def _frame_count(image: PILImage.Image, kind: DocumentKind) -> int:
    # Only TIFF frames are pages; animated PNG/WebP frames are an animation, so page 1 only.
    if kind is DocumentKind.TIFF:
        return int(getattr(image, "n_frames", 1))
    return 1


def _oriented_size(image: PILImage.Image) -> tuple[int, int]:
    width, height = image.size
    if image.getexif().get(EXIF_ORIENTATION_TAG) in EXIF_SWAPS_AXES:
        return height, width
    return width, height


def _inspect_image(path: Path, kind: DocumentKind, *, max_pages: int, max_page_pixels: int) -> DocumentInfo:
    sizes: list[tuple[int, int]] = []
    with _open_image(path, kind, max_page_pixels=max_page_pixels) as image:
        count = _frame_count(image, kind)
        _check_page_count(count, max_pages=max_pages, what=f"{kind.value.upper()} image")
        for index in range(count):
            image.seek(index)
            width, height = image.size
            _check_page_pixels(index + 1, width, height, max_page_pixels=max_page_pixels, dpi=None)
            # Decode now so a truncated or corrupt file is refused before pages are queued.
            image.load()
            sizes.append(_oriented_size(image))
    return DocumentInfo(kind=kind, page_count=count, page_sizes=tuple(sizes))


def _render_image_page(path: Path, kind: DocumentKind, page_no: int, *, max_page_pixels: int) -> Image:
    with _open_image(path, kind, max_page_pixels=max_page_pixels) as image:
        _check_page_no(page_no, _frame_count(image, kind))
        image.seek(page_no - 1)
        width, height = image.size
        _check_page_pixels(page_no, width, height, max_page_pixels=max_page_pixels, dpi=None)
        image.load()
        upright = ImageOps.exif_transpose(image)
        return _to_rgb(upright)


def _to_rgb(image: PILImage.Image) -> Image:
    """RGB uint8 pixels of any Pillow mode: transparency over white, deep modes stretched to 8 bits."""
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        return _stretch_to_rgb(np.asarray(image))
    if image.mode in ("LA", "La", "PA", "RGBa") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        # Transparent pixels often hold black: put the page on white paper first.
        background = PILImage.new("RGBA", image.size, (255, 255, 255, 255))
        image = PILImage.alpha_composite(background, image)
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    return np.asarray(rgb, dtype=np.uint8).copy()


def _stretch_to_rgb(values: np.ndarray) -> Image:
    # Pillow's convert() clips 16-bit and float samples at 255 (a 16-bit scan turns white), so
    # map the image's own range onto 0..255 instead.
    data = values.astype(np.float64)
    low, high = float(data.min()), float(data.max())
    if high > low:
        gray = ((data - low) * (255.0 / (high - low))).round()
    else:
        gray = np.full(data.shape, 255.0 if high > 0 else 0.0)
    gray8 = gray.clip(0, 255).astype(np.uint8)
    return np.repeat(gray8[:, :, np.newaxis], 3, axis=2)
