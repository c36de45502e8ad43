"""The searchable PDF: the source's pages as they are, each OCRed page with its invisible text layer.

Aggregation calls ``make_searchable_pdf`` with the source file and the layers the page workers
made (``pipeline.outputs.pdflayer``). Nothing on a page is re-encoded or re-rasterised: each
layer becomes a Form XObject drawn after the page's own content (which is wrapped in ``q``/``Q``
so no state it leaves behind moves the layer), through a matrix that maps the layer (the page as
the reader sees it, in rendered pixels) onto the page's CropBox in its own, possibly rotated,
user space. One glyphless font serves every layer.

- Pages read from their own text layer get no layer: their text is already there.
- An OCRed page that carried an old invisible OCR layer (text render mode 3 or 7, e.g. from an
  earlier OCRmyPDF run) has that text removed first, so its words are not found twice; visible
  text is never touched.
- Image uploads become a PDF with one page per image (frame) by img2pdf, which embeds JPEG data
  as it is and other images losslessly.
- A page without a layer (it failed, or its layer is missing or unreadable) keeps its source
  page and is listed with the reason in the report, which aggregation adds to ``result.json``.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pikepdf

from pipeline.outputs.pdflayer import FONT_RESOURCE, add_font, read_layer

# Text-showing operators, and the render modes that draw nothing (3) or only clip (7).
_SHOW = frozenset({"Tj", "TJ", "'", '"'})
_INVISIBLE = frozenset({3, 7})


@dataclass(slots=True)
class SearchableReport:
    """What went into the searchable PDF: pages given a layer, and pages left without one (why)."""

    layered: list[int] = field(default_factory=list)
    without_layer: dict[int, str] = field(default_factory=dict)
    stripped: list[int] = field(default_factory=list)  # old invisible OCR text removed

    def as_json(self) -> dict[str, object]:
        """The ``outputs.pdf`` entry of ``result.json``."""
        return {
            "pages_with_ocr_layer": self.layered,
            "pages_without_ocr_layer": [
                {"page_no": n, "reason": r} for n, r in sorted(self.without_layer.items())
            ],
            "old_ocr_layers_removed": self.stripped,
        }


def _visible_box(page: pikepdf.Page) -> tuple[float, float, float, float]:
    """The CropBox within the MediaBox (what viewers and pdfium show), as (x0, y0, x1, y1)."""
    media = [float(v) for v in page.mediabox]
    crop = [float(v) for v in page.cropbox]
    mx0, mx1 = sorted((media[0], media[2]))
    my0, my1 = sorted((media[1], media[3]))
    cx0, cx1 = sorted((crop[0], crop[2]))
    cy0, cy1 = sorted((crop[1], crop[3]))
    x0, y0, x1, y1 = max(mx0, cx0), max(my0, cy0), min(mx1, cx1), min(my1, cy1)
    if x1 <= x0 or y1 <= y0:
        return mx0, my0, mx1, my1
    return x0, y0, x1, y1


def layer_matrix(page: pikepdf.Page, layer_size: tuple[float, float]) -> list[float]:
    """The matrix from a layer (the displayed page, ``layer_size`` units, y up) to ``page``'s user space."""
    x0, y0, x1, y1 = _visible_box(page)
    width, height = x1 - x0, y1 - y0
    rotation = int(page.rotation) % 360
    shown_w, shown_h = (height, width) if rotation in (90, 270) else (width, height)
    sx, sy = shown_w / layer_size[0], shown_h / layer_size[1]
    # Displayed (dx, dy) -> user space: x' = a dx + c dy + e, y' = b dx + d dy + f.
    a, b, c, d, e, f = {
        0: (1, 0, 0, 1, 0, 0),
        90: (0, 1, -1, 0, width, 0),
        180: (-1, 0, 0, -1, width, height),
        270: (0, -1, 1, 0, 0, height),
    }.get(rotation, (1, 0, 0, 1, 0, 0))
    return [a * sx, b * sx, c * sy, d * sy, e + x0, f + y0]


_Instruction = pikepdf.ContentStreamInstruction | pikepdf.ContentStreamInlineImage


def _strip_stream(operations: list[_Instruction]) -> tuple[list[_Instruction], bool]:
    out: list[_Instruction] = []
    mode, stack, removed = 0, [], False
    for instruction in operations:
        if isinstance(instruction, pikepdf.ContentStreamInlineImage):
            out.append(instruction)
            continue
        operands, operator = instruction.operands, str(instruction.operator)
        if operator == "q":
            stack.append(mode)
        elif operator == "Q":
            mode = stack.pop() if stack else 0
        elif operator == "Tr" and operands:
            mode = int(operands[0])
        elif operator in _SHOW and mode in _INVISIBLE:
            removed = True
            # ' and " also move to the next line (and " sets spacing): keep that, drop the text.
            if operator == "'":
                out.append(pikepdf.ContentStreamInstruction([], pikepdf.Operator("T*")))
            elif operator == '"':
                out.append(pikepdf.ContentStreamInstruction([operands[0]], pikepdf.Operator("Tw")))
                out.append(pikepdf.ContentStreamInstruction([operands[1]], pikepdf.Operator("Tc")))
                out.append(pikepdf.ContentStreamInstruction([], pikepdf.Operator("T*")))
            continue
        out.append(instruction)
    return out, removed


def strip_invisible_text(pdf: pikepdf.Pdf, page: pikepdf.Page) -> bool:
    """Remove text drawn invisibly (an old OCR layer) from ``page`` and the forms it draws directly.

    Returns whether anything was removed. Visible text, images and paths stay as they are.
    """
    xobjects = page.resources.get("/XObject")
    forms = [
        form for form in (xobjects.values() if isinstance(xobjects, pikepdf.Dictionary) else [])
        if isinstance(form, pikepdf.Stream) and form.get("/Subtype") == pikepdf.Name.Form
    ]  # fmt: skip
    removed = False
    content = _stripped(page)
    if content is not None:
        page.obj.Contents = pdf.make_stream(content)
        removed = True
    for form in forms:
        content = _stripped(form)
        if content is not None:
            form.write(content)
            removed = True
    return removed


def _stripped(target: pikepdf.Page | pikepdf.Object) -> bytes | None:
    """``target``'s content stream without its invisible text, or None when it has none."""
    kept, changed = _strip_stream(pikepdf.parse_content_stream(target))
    return pikepdf.unparse_content_stream(kept) if changed else None


def _image_pdf(path: Path) -> bytes:
    """An image file as a PDF, one page per frame; JPEG kept as it is, the rest lossless."""
    import img2pdf
    from PIL import Image, ImageOps, ImageSequence

    try:
        return bytes(img2pdf.convert(str(path), rotation=img2pdf.Rotation.ifvalid))
    except Exception:  # noqa: BLE001 - alpha, WebP, odd EXIF: decode ourselves, as the OCR saw it
        frames = []
        with Image.open(path) as image:
            for frame in ImageSequence.Iterator(image):
                upright = ImageOps.exif_transpose(frame)
                if upright.mode not in ("RGB", "L", "1"):
                    flat = Image.new("RGB", upright.size, "white")
                    flat.paste(upright.convert("RGBA"), mask=upright.convert("RGBA").getchannel("A"))
                    upright = flat
                buffer = io.BytesIO()
                upright.save(buffer, format="PNG")
                frames.append(buffer.getvalue())
        return bytes(img2pdf.convert(frames))


def make_searchable_pdf(
    source: Path,
    *,
    is_pdf: bool,
    layers: Mapping[int, bytes | None],
    missing: Mapping[int, str],
    strip_old: set[int],
    target: Path,
) -> SearchableReport:
    """Write the searchable PDF of ``source`` to ``target``.

    ``layers`` maps page numbers (from 1) to their layer PDF (None: expected but not stored),
    ``missing`` gives the reason of pages that have none (failed pages), ``strip_old`` the pages
    whose old invisible OCR text goes. Pages in neither keep exactly what they have.
    """
    report = SearchableReport(without_layer=dict(missing))
    opened = pikepdf.open(source) if is_pdf else pikepdf.open(io.BytesIO(_image_pdf(source)))
    with opened as pdf:
        font = add_font(pdf)
        count = len(pdf.pages)
        for page_no, data in sorted(layers.items()):
            if not 1 <= page_no <= count:
                report.without_layer[page_no] = f"the source has no page {page_no}"
                continue
            if data is None:
                report.without_layer[page_no] = (
                    "its text layer was not stored (the page result is older than the request)"
                )
                continue
            try:
                content, size = read_layer(data)
            except pikepdf.PdfError as exc:
                report.without_layer[page_no] = f"its text layer cannot be read ({exc})"
                continue
            page = pdf.pages[page_no - 1]
            if page_no in strip_old and strip_invisible_text(pdf, page):
                report.stripped.append(page_no)
            if not content.strip():
                report.layered.append(page_no)  # read, and no text on it
                continue
            form = pikepdf.Stream(pdf, content)
            form.Type = pikepdf.Name.XObject
            form.Subtype = pikepdf.Name.Form
            form.BBox = [0, 0, size[0], size[1]]
            form.Matrix = layer_matrix(page, size)
            form.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary({FONT_RESOURCE: font}))
            name = page.add_resource(pdf.make_indirect(form), pikepdf.Name.XObject, prefix="PagemillOCR")
            # The page's own content in q/Q, so a transform it leaves active cannot move the layer.
            page.contents_add(b"q\n", prepend=True)
            page.contents_add(f"\nQ\nq {name} Do Q\n".encode("ascii"), prepend=False)
            report.layered.append(page_no)
        pdf.save(target, compress_streams=True, object_stream_mode=pikepdf.ObjectStreamMode.generate)
    return report
