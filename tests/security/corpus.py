"""Hostile files, generated in code: PDFs, images and text that try to break parsing or limits.

Each builder returns the bytes of one file; nothing binary is committed. PDFs are written by
hand (``_pdf``) so a test controls every object, offset and count; pypdf makes the encrypted one.
"""

from __future__ import annotations

import io
import re
import struct
import zlib

from PIL import Image

from tests import pages

# A small page (points) so accepted hostile PDFs are rendered and OCRed in a blink.
SMALL_PAGE = (0, 0, 144, 72)


def _pdf(objects: list[bytes], *, root: int = 1, trailer_extra: bytes = b"", xref: bool = True) -> bytes:
    """A PDF whose objects are ``objects`` (numbered from 1), with a correct xref table."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, obj in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, obj)
    start = len(out)
    if xref:
        out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
        out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root %d 0 R %s>>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        root,
        trailer_extra,
        start,
    )
    return bytes(out)


def _box(box: tuple[float, ...]) -> bytes:
    return b"[" + b" ".join(repr(v).encode() for v in box) + b"]"


def _stream(data: bytes, extra: bytes = b"") -> bytes:
    return b"<< /Length %d %s>>\nstream\n%s\nendstream" % (len(data), extra, data)


def one_page_pdf(*, box: tuple[float, ...] = SMALL_PAGE, catalog_extra: bytes = b"", page_extra: bytes = b"",
                 more: list[bytes] | None = None) -> bytes:  # fmt: skip
    """Catalog 1, Pages 2, Page 3 with a line of text (object 4); ``more`` become objects 5.."""
    content = b"BT /F1 24 Tf 10 30 Td (Hello) Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R %s>>" % catalog_extra,
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox %s /Contents 4 0 R "
        b"/Resources << /Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >> >> %s>>"
        % (_box(box), page_extra),
        _stream(content),
        *(more or []),
    ]
    return _pdf(objects)


def good_pdf() -> bytes:
    """A real one-page text PDF (Pillow-rendered A4), the document that must still complete."""
    return pages.pdf_bytes([pages.text_page(pages.PARAGRAPH_A)])


def many_pages_pdf(count: int) -> bytes:
    """``count`` pages that are all the same page object: a few hundred bytes per thousand pages."""
    kids = b" ".join([b"3 0 R"] * count)
    return _pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, count),
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 144 72] >>",
        ]
    )


def lying_count_pdf() -> bytes:
    """One page, but the page tree claims a billion."""
    return _pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1000000000 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 144 72] >>",
        ]
    )


def page_tree_loop_pdf() -> bytes:
    """A page tree whose only kid is itself."""
    return _pdf([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [2 0 R] /Count 1 >>"])


def deep_nesting_pdf(depth: int = 100_000) -> bytes:
    """A page dictionary holding an array nested ``depth`` levels deep (parser recursion)."""
    return one_page_pdf(page_extra=b"/Junk " + b"[" * depth + b"]" * depth + b" ")


def encrypted_pdf() -> bytes:
    """A page protected by a user password (AES-256), written by pypdf."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(one_page_pdf())))
    writer.encrypt(user_password="secret", owner_password="owner", algorithm="AES-256")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def broken_xref_pdf() -> bytes:
    """Objects intact, every xref offset and startxref wrong: readers must rebuild the table."""
    good = one_page_pdf()
    good = re.sub(rb"\d{10} 00000 n ", b"0000099999 00000 n ", good)
    return re.sub(rb"startxref\n\d+", b"startxref\n7", good)


def garbage_pdf() -> bytes:
    """A PDF header, then an xref and objects that are noise: nothing to rebuild from."""
    noise = bytes((i * 37 + 11) % 256 for i in range(4096)).replace(b"obj", b"xxx")
    return b"%PDF-1.7\n" + noise + b"\nxref\n0 3\ngarbage\ntrailer\n<< /Root 9 0 R >>\nstartxref\n12\n%%EOF\n"


def javascript_pdf() -> bytes:
    """An OpenAction and a page action that run JavaScript (a reader must never execute them)."""
    js = b"<< /S /JavaScript /JS (app.alert('pwned'); this.exportDataObject({cName: 'x', nLaunch: 2});) >>"
    return one_page_pdf(
        catalog_extra=b"/OpenAction 5 0 R /Names << /JavaScript << /Names [(a) 5 0 R] >> >> ",
        page_extra=b"/AA << /O 5 0 R >> ",
        more=[js],
    )


def xfa_pdf() -> bytes:
    """An AcroForm with an XFA form stream (dynamic forms with scripts)."""
    xfa = _stream(
        b'<xdp:xdp xmlns:xdp="http://ns.adobe.com/xdp/"><script>xfa.host.messageBox(1)</script></xdp:xdp>'
    )
    return one_page_pdf(
        catalog_extra=b"/AcroForm << /Fields [] /XFA 5 0 R /NeedsRendering true >> ", more=[xfa]
    )


def embedded_file_pdf() -> bytes:
    """A PDF carrying an embedded executable and a Launch action that would open it."""
    payload = _stream(b"MZ\x90\x00 not really an executable", b"/Type /EmbeddedFile ")
    spec = b"<< /Type /Filespec /F (evil.exe) /UF (evil.exe) /EF << /F 5 0 R >> >>"
    return one_page_pdf(
        catalog_extra=b"/Names << /EmbeddedFiles << /Names [(evil.exe) 6 0 R] >> >> "
        b"/OpenAction << /S /Launch /F 6 0 R >> ",
        more=[payload, spec],
    )


def truncated(data: bytes, keep: float = 0.5) -> bytes:
    """The first part of ``data``."""
    return data[: max(1, int(len(data) * keep))]


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A PNG declaring ``width`` x ``height`` pixels, holding a few hundred bytes of zlib data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    # The start of an all-zero image: a zlib stream of zeros that would inflate to gigabytes.
    idat = zlib.compressobj(9).compress(b"\x00" * 1_000_000)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def tiff_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A little-endian TIFF declaring ``width`` x ``height`` 8-bit gray pixels in one tiny strip."""
    entries = [
        (256, 4, 1, width),  # ImageWidth, LONG
        (257, 4, 1, height),  # ImageLength
        (258, 3, 1, 8),  # BitsPerSample
        (259, 3, 1, 8),  # Compression: Deflate
        (262, 3, 1, 1),  # Photometric: BlackIsZero
        (273, 4, 1, 0),  # StripOffsets (patched below)
        (277, 3, 1, 1),  # SamplesPerPixel
        (278, 4, 1, height),  # RowsPerStrip
        (279, 4, 1, 0),  # StripByteCounts (patched below)
    ]
    strip = zlib.compress(b"\x00" * 100_000, 9)
    ifd_offset = 8
    ifd_size = 2 + 12 * len(entries) + 4
    strip_offset = ifd_offset + ifd_size
    out = bytearray(b"II*\x00" + struct.pack("<I", ifd_offset))
    out += struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        if tag == 273:
            value = strip_offset
        elif tag == 279:
            value = len(strip)
        fmt = "<HHIHH" if kind == 3 else "<HHII"
        out += (
            struct.pack(fmt, tag, kind, count, value, 0)
            if kind == 3
            else struct.pack(fmt, tag, kind, count, value)
        )
    out += struct.pack("<I", 0)
    return bytes(out + strip)


def tiff_ifd_loop() -> bytes:
    """A valid 8x8 TIFF whose next-IFD pointer points back at its own IFD (an endless page list)."""
    data = bytearray(image_bytes(Image.new("L", (8, 8), 255), "TIFF"))
    (first,) = struct.unpack("<I", data[4:8])
    (count,) = struct.unpack("<H", data[first : first + 2])
    next_at = first + 2 + 12 * count
    data[next_at : next_at + 4] = struct.pack("<I", first)
    return bytes(data)


def image_bytes(image: Image.Image, fmt: str) -> bytes:
    """``image`` saved as ``fmt``."""
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()
