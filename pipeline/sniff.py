"""What a file is, from its first bytes: the document kinds we read, and a clear refusal for the rest."""

from __future__ import annotations

from enum import StrEnum

from pipeline.errors import UnsupportedTypeError

# How far into the file a PDF header may start (bytes); pdfium, like Acrobat, skips leading junk.
PDF_HEADER_SEARCH_BYTES = 1024
# Bytes shown (as hex) when a file matches no known signature.
HEAD_PREVIEW_BYTES = 8


class DocumentKind(StrEnum):
    """A file type we read, named as it appears in storage keys (``source.<kind>``)."""

    PDF = "pdf"
    PNG = "png"
    JPEG = "jpeg"
    TIFF = "tiff"
    WEBP = "webp"


# Signatures of formats we do not read, so the refusal can say what the file is.
_OTHER_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"BM", "a BMP image"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "a JPEG 2000 image"),
    (b"\xff\x4f\xff\x51", "a JPEG 2000 codestream"),
    (b"AT&TFORM", "a DjVu document"),
    (b"%!PS", "a PostScript file"),
    (b"PK\x03\x04", "a ZIP archive (or an Office document such as .docx/.xlsx)"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "a legacy Microsoft Office document"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
    (b"{\\rtf", "an RTF document"),
    (b"\x00\x00\x01\x00", "a Windows icon"),
    (b"8BPS", "a Photoshop document"),
)


def sniff_type(head: bytes) -> DocumentKind:
    """The document kind from the file's first bytes (64 are enough); UnsupportedTypeError otherwise."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return DocumentKind.PNG
    if head.startswith(b"\xff\xd8\xff"):
        return DocumentKind.JPEG
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):  # classic and BigTIFF
        return DocumentKind.TIFF
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return DocumentKind.WEBP
    if b"%PDF-" in head[:PDF_HEADER_SEARCH_BYTES]:
        return DocumentKind.PDF
    raise UnsupportedTypeError(
        f"the file looks like {_describe(head)}; upload a PDF or a PNG, JPEG, TIFF or WebP image"
    )


def _describe(head: bytes) -> str:
    if not head:
        return "nothing: it is empty (0 bytes)"
    for signature, name in _OTHER_SIGNATURES:
        if head.startswith(signature):
            return name
    if head[4:8] == b"ftyp":
        brand = head[8:12].decode("ascii", "replace")
        if brand in ("heic", "heix", "mif1", "msf1", "avif"):
            return f"a HEIF/AVIF image (brand {brand!r})"
        return f"an MP4/QuickTime file (brand {brand!r})"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<!doctype html", b"<html")):
        return "an HTML page"
    if text.startswith((b"<?xml", b"<svg")):
        return "an XML or SVG file"
    if _is_text(head):
        return "plain text"
    return f"an unknown format (first bytes {head[:HEAD_PREVIEW_BYTES].hex(' ')})"


def _is_text(head: bytes) -> bool:
    try:
        decoded = head.decode("utf-8")
    except UnicodeDecodeError:
        # The head may end inside a multi-byte character; drop up to three trailing bytes.
        try:
            decoded = head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return False
    return all(ch.isprintable() or ch in "\t\r\n\f" for ch in decoded)
