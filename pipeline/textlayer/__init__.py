"""PDF text layers: which pages already hold their text, and that text as lines with boxes.

Most PDFs people upload are born digital: their text is in the file, exact, and reading it takes
milliseconds, where OCR takes seconds and may get it wrong. Before a page is rendered, pdfium's
text page tells us what each page carries, and ``plan_page`` decides where its text comes from:

* ``text_layer``     visible text in fonts with a usable Unicode mapping: read it, never OCR it.
* ``garbage_layer``  text whose extraction is junk: pdfium flags characters whose font has no
                     Unicode mapping (glyph ids come out, ``3HQČåQt`` for ``Peněžní``), or the
                     characters are unusable (private use, U+FFFD, controls) or byte-swapped
                     (a ToUnicode map in the wrong byte order turns ``Mu`` into ``䴀甀``). OCR it.
* ``ocr_layer``      most text is invisible (render mode 3, or clip-only 7): a scanner's or an OCR
                     tool's layer over an image, of unknown quality. OCR it.
* ``mostly_image``   a little visible text on a page that is mostly image (a scan with a stamped
                     header): OCR it; ``redo`` keeps the real text and adds OCR lines around it.
* ``image_only`` / ``no_text``  no text at all: OCR it (``no_text`` may be outlined glyphs).

``ocr_mode`` ``force`` OCRs every page. Lines of a text-layer page are built from pdfium's
characters (its generated line breaks and spaces, split again at wide gaps so two columns never
share a line), with boxes in pixels of the page rendered at the document's dpi, as the reader
sees the page (``/Rotate`` applied), so ``result.json`` has the same shape as for OCR.

The package: ``model`` (kinds, modes, plans), ``plan`` (deciding, and ``redo``'s merge),
``reading`` (pdfium: ``analyze_pdf``).
"""

from pipeline.textlayer.model import LayerKind, OcrMode, PageLayer, Plan, TextSource
from pipeline.textlayer.plan import (
    REDO_OVERLAP,
    layer_result,
    merge_real_text,
    ocr_outside_real_text,
    plan_page,
)
from pipeline.textlayer.reading import analyze_pdf

__all__ = [
    "REDO_OVERLAP",
    "LayerKind",
    "OcrMode",
    "PageLayer",
    "Plan",
    "TextSource",
    "analyze_pdf",
    "layer_result",
    "merge_real_text",
    "ocr_outside_real_text",
    "plan_page",
]
