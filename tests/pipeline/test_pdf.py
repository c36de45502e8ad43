"""pipeline.pdf on real files: documents made here with Pillow/pypdf, and the scans in resources/."""

from __future__ import annotations

import io
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pypdf
import pytest
from PIL import Image, ImageDraw, ImageFont

from pipeline import pdf
from pipeline.errors import (
    BadInputError,
    EncryptedDocumentError,
    LimitExceededError,
    UnreadableDocumentError,
    UnsupportedTypeError,
)
from pipeline.pdf import DocumentKind

RESOURCES = Path(__file__).resolve().parent.parent / "resources" / "ocr"
LIMITS = {"max_pages": 50, "max_page_pixels": 60_000_000}
PAGE_PX = (620, 877)  # A4 at 75 dpi, pixels
PAGE_DPI = 75


def _page(text: str, size: tuple[int, int] = PAGE_PX, mode: str = "L") -> Image.Image:
    page = Image.new("L", size, 255)
    draw = ImageDraw.Draw(page)
    draw.text((40, 40), text, fill=0, font=ImageFont.load_default(size=28))
    return page.convert(mode)


def _pdf_bytes(pages: list[Image.Image]) -> bytes:
    out = io.BytesIO()
    rgb = [p.convert("RGB") for p in pages]
    rgb[0].save(out, format="PDF", save_all=True, append_images=rgb[1:], resolution=PAGE_DPI)
    return out.getvalue()


def _save(image: Image.Image, path: Path, **params: object) -> Path:
    image.save(path, **params)
    return path


@pytest.fixture
def three_page_pdf(tmp_path: Path) -> Path:
    path = tmp_path / "three.pdf"
    path.write_bytes(_pdf_bytes([_page(f"Page number {n}") for n in (1, 2, 3)]))
    return path


def _has_ink(image: np.ndarray) -> bool:
    return bool((image < 100).any() and (image > 200).any())


# --- sniffing --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"%PDF-1.7\n%\xe2\xe3", DocumentKind.PDF),
        (b"\r\n junk before the header %PDF-1.4\n", DocumentKind.PDF),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", DocumentKind.PNG),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", DocumentKind.JPEG),
        (b"II*\x00\x08\x00\x00\x00", DocumentKind.TIFF),
        (b"MM\x00*\x00\x00\x00\x08", DocumentKind.TIFF),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", DocumentKind.WEBP),
    ],
)
def test_sniff_type_knows_supported_formats(head: bytes, kind: DocumentKind) -> None:
    assert pdf.sniff_type(head) is kind


@pytest.mark.parametrize(
    ("head", "named"),
    [
        (b"", "empty"),
        (b"GIF89a\x01\x00", "GIF"),
        (b"PK\x03\x04\x14\x00", "ZIP"),
        (b"<!DOCTYPE html><html>", "HTML"),
        (b"Dear customer, here is your invoice", "plain text"),
        (b"\x00\x00\x00\x20ftypheic", "HEIF"),
        (b"\x01\x02\x03\x04\xfe\xff\x00\x10", "01 02 03 04"),
    ],
)
def test_sniff_type_refusal_names_what_the_bytes_are(head: bytes, named: str) -> None:
    with pytest.raises(UnsupportedTypeError) as info:
        pdf.sniff_type(head)
    assert named in info.value.reason
    assert "PDF" in info.value.reason  # and says what to upload instead


# --- PDFs ------------------------------------------------------------------------------------------


def test_multi_page_pdf_is_counted_sized_and_rendered(three_page_pdf: Path) -> None:
    info = pdf.inspect_document(three_page_pdf, dpi=150, **LIMITS)
    assert info.kind is DocumentKind.PDF
    assert info.page_count == 3
    # 620 px at 75 dpi = 595.2 pt; at 150 dpi 1240 px, give or take pdfium's float rounding.
    nominal = (PAGE_PX[0] * 150 / PAGE_DPI, PAGE_PX[1] * 150 / PAGE_DPI)
    assert len(set(info.page_sizes)) == 1
    assert all(abs(got - want) <= 1 for got, want in zip(info.page_sizes[0], nominal, strict=True))

    pages = [pdf.render_page(three_page_pdf, n, dpi=150, max_page_pixels=LIMITS["max_page_pixels"]) for n in (1, 2, 3)]
    for image, (width, height) in zip(pages, info.page_sizes, strict=True):
        assert image.dtype == np.uint8
        assert image.shape == (height, width, 3)
        assert image.flags.c_contiguous
        assert _has_ink(image)
    assert not np.array_equal(pages[0], pages[1])  # each page is its own page


def test_pdf_render_scales_with_dpi(three_page_pdf: Path) -> None:
    low = pdf.render_page(three_page_pdf, 1, dpi=72, max_page_pixels=LIMITS["max_page_pixels"])
    high = pdf.render_page(three_page_pdf, 1, dpi=144, max_page_pixels=LIMITS["max_page_pixels"])
    assert abs(high.shape[0] - 2 * low.shape[0]) <= 1
    assert abs(high.shape[1] - 2 * low.shape[1]) <= 1


@pytest.mark.parametrize("page_no", [0, -1, 4])
def test_page_out_of_range_is_bad_input(three_page_pdf: Path, page_no: int) -> None:
    with pytest.raises(BadInputError) as info:
        pdf.render_page(three_page_pdf, page_no, dpi=72, max_page_pixels=10**8)
    assert "3 page" in info.value.reason


def test_too_many_pages_names_the_numbers(three_page_pdf: Path) -> None:
    with pytest.raises(LimitExceededError) as info:
        pdf.inspect_document(three_page_pdf, max_pages=2, max_page_pixels=10**8, dpi=72)
    assert "3 pages" in info.value.reason and "limit of 2" in info.value.reason


def test_pdf_page_over_pixel_limit_at_the_given_dpi(tmp_path: Path) -> None:
    path = tmp_path / "poster.pdf"
    out = io.BytesIO()
    Image.new("RGB", (1000, 1000), "white").save(out, format="PDF", resolution=72)  # 1000 x 1000 pt
    path.write_bytes(out.getvalue())
    # 72 dpi: 1 Mpx, fine; 300 dpi: 4167 x 4167 = 17.4 Mpx, over a 10 Mpx limit.
    assert pdf.inspect_document(path, max_pages=5, max_page_pixels=10_000_000, dpi=72).page_count == 1
    with pytest.raises(LimitExceededError) as info:
        pdf.inspect_document(path, max_pages=5, max_page_pixels=10_000_000, dpi=300)
    assert "4167x4167" in info.value.reason and "300 dpi" in info.value.reason and "10000000" in info.value.reason
    with pytest.raises(LimitExceededError):
        pdf.render_page(path, 1, dpi=300, max_page_pixels=10_000_000)


def _encrypt(data: bytes, *, user_password: str) -> bytes:
    writer = pypdf.PdfWriter(clone_from=io.BytesIO(data))
    # RC4 needs no crypto library; pdfium's refusal does not depend on the algorithm.
    writer.encrypt(user_password=user_password, owner_password="owner", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_password_protected_pdf_is_refused(tmp_path: Path, three_page_pdf: Path) -> None:
    path = tmp_path / "locked.pdf"
    path.write_bytes(_encrypt(three_page_pdf.read_bytes(), user_password="secret"))
    with pytest.raises(EncryptedDocumentError) as info:
        pdf.inspect_document(path, dpi=72, **LIMITS)
    assert "password" in info.value.reason
    with pytest.raises(EncryptedDocumentError):
        pdf.render_page(path, 1, dpi=72, max_page_pixels=10**8)


def test_pdf_encrypted_without_user_password_opens(tmp_path: Path, three_page_pdf: Path) -> None:
    # Owner-password-only PDFs ("no printing") open without a password in every reader.
    path = tmp_path / "restricted.pdf"
    path.write_bytes(_encrypt(three_page_pdf.read_bytes(), user_password=""))
    assert pdf.inspect_document(path, dpi=72, **LIMITS).page_count == 3
    assert _has_ink(pdf.render_page(path, 2, dpi=72, max_page_pixels=10**8))


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_pdf_is_unreadable(tmp_path: Path, three_page_pdf: Path, keep: float) -> None:
    data = three_page_pdf.read_bytes()
    path = tmp_path / "cut.pdf"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(UnreadableDocumentError) as info:
        pdf.inspect_document(path, dpi=72, **LIMITS)
    assert "truncated or corrupt" in info.value.reason


def test_wrong_magic_behind_a_pdf_name(tmp_path: Path) -> None:
    text = tmp_path / "report.pdf"
    text.write_bytes(b"This is not a PDF at all, just words.\n")
    with pytest.raises(UnsupportedTypeError) as info:
        pdf.inspect_document(text, dpi=72, **LIMITS)
    assert "plain text" in info.value.reason
    # The content decides, not the name: a PNG called .pdf is read as a PNG.
    png = _save(_page("png inside"), tmp_path / "scan.pdf", format="PNG")
    assert pdf.inspect_document(png, dpi=72, **LIMITS).kind is DocumentKind.PNG


def test_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.pdf"
    path.write_bytes(b"")
    with pytest.raises(UnsupportedTypeError, match="empty"):
        pdf.inspect_document(path, dpi=72, **LIMITS)


# --- images ----------------------------------------------------------------------------------------


def test_multi_page_tiff_is_several_pages(tmp_path: Path) -> None:
    frames = [_page("first", (600, 800)), _page("second", (800, 600)), _page("third", (300, 400))]
    path = _save(frames[0], tmp_path / "multi.tif", format="TIFF", save_all=True, append_images=frames[1:],
                 compression="tiff_lzw")
    info = pdf.inspect_document(path, dpi=180, **LIMITS)
    assert (info.kind, info.page_count) == (DocumentKind.TIFF, 3)
    assert info.page_sizes == ((600, 800), (800, 600), (300, 400))
    second = pdf.render_page(path, 2, dpi=180, max_page_pixels=10**8)
    assert second.shape == (600, 800, 3)
    np.testing.assert_array_equal(second[:, :, 0], np.asarray(frames[1]))
    with pytest.raises(LimitExceededError, match="3 pages"):
        pdf.inspect_document(path, max_pages=2, max_page_pixels=10**8, dpi=180)
    with pytest.raises(BadInputError):
        pdf.render_page(path, 4, dpi=180, max_page_pixels=10**8)


def test_bilevel_group4_tiff_becomes_black_and_white_rgb(tmp_path: Path) -> None:
    page = _page("one bit per pixel", mode="1")
    path = _save(page, tmp_path / "fax.tif", format="TIFF", compression="group4")
    image = pdf.render_page(path, 1, dpi=180, max_page_pixels=10**8)
    assert image.shape == (PAGE_PX[1], PAGE_PX[0], 3)
    assert set(np.unique(image)) == {0, 255}


def test_sixteen_bit_grayscale_keeps_its_contrast(tmp_path: Path) -> None:
    # Pillow's convert("RGB") would clip every sample above 255 to white.
    ramp = (np.arange(256, dtype=np.uint32).reshape(16, 16) * 257).astype(np.uint16)
    path = _save(Image.fromarray(ramp), tmp_path / "deep.png", format="PNG")
    image = pdf.render_page(path, 1, dpi=180, max_page_pixels=10**8)
    assert image.shape == (16, 16, 3)
    np.testing.assert_array_equal(image[:, :, 0], (ramp // 257).astype(np.uint8))


def test_transparent_pixels_land_on_white(tmp_path: Path) -> None:
    rgba = Image.new("RGBA", (40, 30), (0, 0, 0, 0))  # transparent black
    ImageDraw.Draw(rgba).rectangle((10, 10, 20, 20), fill=(0, 0, 0, 255))
    image = pdf.render_page(_save(rgba, tmp_path / "alpha.png", format="PNG"), 1, dpi=180, max_page_pixels=10**8)
    assert image[0, 0].tolist() == [255, 255, 255]
    assert image[15, 15].tolist() == [0, 0, 0]
    palette = rgba.convert("RGB").quantize(2)
    palette.info["transparency"] = int(np.asarray(palette)[0, 0])
    image = pdf.render_page(_save(palette, tmp_path / "pal.png", format="PNG", transparency=palette.info["transparency"]),
                            1, dpi=180, max_page_pixels=10**8)
    assert image[0, 0].tolist() == [255, 255, 255]


def test_cmyk_jpeg_and_webp_become_rgb(tmp_path: Path) -> None:
    cmyk = _save(_page("cmyk", mode="CMYK"), tmp_path / "print.jpg", format="JPEG", quality=95)
    webp = _save(_page("webp", mode="RGB"), tmp_path / "page.webp", format="WEBP", lossless=True)
    for path, kind in ((cmyk, DocumentKind.JPEG), (webp, DocumentKind.WEBP)):
        assert pdf.inspect_document(path, dpi=180, **LIMITS).kind is kind
        image = pdf.render_page(path, 1, dpi=180, max_page_pixels=10**8)
        assert image.shape == (PAGE_PX[1], PAGE_PX[0], 3) and _has_ink(image)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    page = _page("sideways", (300, 200), mode="RGB")
    exif = Image.Exif()
    exif[pdf.EXIF_ORIENTATION_TAG] = 6  # stored sideways: turn 90° clockwise to view
    path = _save(page, tmp_path / "phone.jpg", format="JPEG", exif=exif)
    assert pdf.inspect_document(path, dpi=180, **LIMITS).page_sizes == ((200, 300),)
    assert pdf.render_page(path, 1, dpi=180, max_page_pixels=10**8).shape == (300, 200, 3)


def test_png_decompression_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    # 900 Mpx in ~100 kB: decoding it would take 900 MB of memory.
    path = _save(Image.new("1", (30_000, 30_000)), tmp_path / "bomb.png", format="PNG", optimize=True)
    assert path.stat().st_size < 200_000
    with pytest.raises(LimitExceededError) as info:
        pdf.inspect_document(path, dpi=180, **LIMITS)
    assert "PAGEMILL_MAX_PAGE_PIXELS" in info.value.reason
    with pytest.raises(LimitExceededError):
        pdf.render_page(path, 1, dpi=180, max_page_pixels=LIMITS["max_page_pixels"])


def test_image_over_the_configured_pixel_limit(tmp_path: Path) -> None:
    path = _save(_page("small", (100, 50)), tmp_path / "small.png", format="PNG")
    with pytest.raises(LimitExceededError) as info:
        pdf.inspect_document(path, max_pages=5, max_page_pixels=4_999, dpi=180)
    assert "100x50 = 5000 pixels" in info.value.reason and "4999" in info.value.reason
    assert pdf.inspect_document(path, max_pages=5, max_page_pixels=5_000, dpi=180).page_count == 1


def test_pillow_limit_follows_a_larger_configured_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Pillow refuses at twice its own limit; a larger configured limit must win.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000)
    path = _save(_page("ok", (60, 60)), tmp_path / "ok.png", format="PNG")
    assert pdf.inspect_document(path, max_pages=5, max_page_pixels=5_000, dpi=180).page_sizes == ((60, 60),)
    assert pdf.render_page(path, 1, dpi=180, max_page_pixels=5_000).shape == (60, 60, 3)


@pytest.mark.parametrize("fmt", ["PNG", "TIFF", "JPEG"])
def test_truncated_image_is_unreadable(tmp_path: Path, fmt: str) -> None:
    noisy = Image.fromarray(np.random.default_rng(7).integers(0, 255, (300, 400), dtype=np.uint8))
    whole = _save(noisy, tmp_path / f"whole.{fmt.lower()}", format=fmt)
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(UnreadableDocumentError) as info:
        pdf.inspect_document(path, dpi=180, **LIMITS)
    assert "truncated" in info.value.reason


# --- the real scans --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind", "size"),
    [
        ("om_francais.pdf", DocumentKind.PDF, (540, 540)),  # 216 x 216 pt at 180 dpi
        ("tt_phototest.tif", DocumentKind.TIFF, (640, 480)),
        ("unlv_8087_054.tif", DocumentKind.TIFF, (2560, 3300)),
        ("om_typewriter.png", DocumentKind.PNG, (4000, 2864)),
    ],
)
def test_real_scans(name: str, kind: DocumentKind, size: tuple[int, int]) -> None:
    path = RESOURCES / name
    with path.open("rb") as fh:
        assert pdf.sniff_type(fh.read(64)) is kind
    info = pdf.inspect_document(path, dpi=180, **LIMITS)
    assert (info.kind, info.page_count, info.page_sizes) == (kind, 1, (size,))
    image = pdf.render_page(path, 1, dpi=180, max_page_pixels=LIMITS["max_page_pixels"])
    assert image.shape == (size[1], size[0], 3) and image.dtype == np.uint8
    assert _has_ink(image)


# --- threads ---------------------------------------------------------------------------------------


def test_rendering_from_many_threads_matches_serial(three_page_pdf: Path) -> None:
    # Without the module's pdfium lock this fails about every other run here: opens report
    # "Data format error" and page sizes fail, i.e. good files refused as corrupt. Many quick
    # opens (low dpi) race more than a few long renders.
    jobs = [(three_page_pdf, 1), (three_page_pdf, 2), (three_page_pdf, 3),
            (RESOURCES / "om_francais.pdf", 1), (RESOURCES / "tt_phototest.tif", 1)]
    expected = {job: pdf.render_page(*job, dpi=20, max_page_pixels=10**8) for job in jobs}
    threads, rounds = 8, 40
    start = threading.Barrier(threads)

    def work(i: int) -> int:
        start.wait()
        same = 0
        for round_no in range(rounds):
            path, page_no = jobs[(i + round_no) % len(jobs)]
            pdf.inspect_document(path, dpi=20, **LIMITS)
            same += np.array_equal(pdf.render_page(path, page_no, dpi=20, max_page_pixels=10**8),
                                   expected[(path, page_no)])
        return same

    with ThreadPoolExecutor(max_workers=threads) as pool:
        assert sum(pool.map(work, range(threads))) == threads * rounds
