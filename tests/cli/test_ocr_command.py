"""`pagemill ocr` on a fresh machine: embedded Redis and PostgreSQL, nothing left behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil

from tests import pages

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "pagemill" / "samples" / "sample.pdf"
SAMPLE_PAGE_1 = [
    "pagemill sample document",
    "This page was rendered from text, saved as a PDF,",
    "and is read back by the OCR pipeline: each page is",
    "rendered, turned upright, recognised and put in",
    "reading order before the pages are aggregated.",
]
# Variables that would point the CLI at real servers instead of the embedded ones.
SERVER_VARS = ("REDIS_URL", "CELERY_BROKER_URL", "DATABASE_URL", "S3_BUCKET")


def _embedded_env(data_dir: Path) -> dict[str, str]:
    # (ORT_DISABLE_TELEMETRY too: this test process has it from pipeline.ocr; the CLI sets its own)
    env = {k: v for k, v in os.environ.items() if k not in (*SERVER_VARS, "ORT_DISABLE_TELEMETRY")}
    tmp = data_dir.parent / "tmp"  # the CLI's own temp dir, to check it leaves nothing there
    tmp.mkdir(parents=True, exist_ok=True)
    env.update(PAGEMILL_DATA_DIR=str(data_dir), PAGEMILL_OCR_THREADS="1", PYTHONPATH=str(ROOT), TMPDIR=str(tmp))
    return env


def _processes_using(path: Path) -> list[str]:
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])
        except psutil.Error:
            continue
        if str(path) in cmdline and proc.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(f"{proc.pid}: {cmdline}")
    return found


def test_ocr_sample_in_embedded_mode_prints_text_and_leaves_nothing_running(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    result = subprocess.run(
        [sys.executable, "-m", "pagemill.cli", "ocr", str(SAMPLE)],
        check=False, env=_embedded_env(data_dir), capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    page_texts = result.stdout.split("\f")
    assert len(page_texts) == 2
    assert pages.cer(page_texts[0], "\n".join(SAMPLE_PAGE_1)) < 0.05, page_texts[0]
    assert pages.cer(page_texts[1], "\n".join(pages.LEFT_COLUMN + pages.RIGHT_COLUMN)) < 0.05, page_texts[1]
    assert _processes_using(data_dir) == []
    # Embedded Redis's run dir is gone (pgserver's lock dir under runtime-0 is meant to stay).
    assert list((tmp_path / "tmp").glob("pagemill-*")) == []
    # Nor a file of onnxruntime's telemetry (its device id), which pagemill turns off.
    assert not (tmp_path / "tmp" / ".ses").exists()
    assert (data_dir / "postgres").is_dir()  # the job store persists between runs


def test_ocr_json_to_out_dir_and_failure_exit_code(tmp_path: Path) -> None:
    good = pages.write_pdf(tmp_path / "letter.pdf", [pages.text_page(pages.PARAGRAPH_A)])
    bad = tmp_path / "notes.pdf"
    bad.write_text("this is not a PDF at all")
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "pagemill.cli", "ocr", str(good), str(bad), "--out", str(out), "--format", "json"],
        check=False, env=_embedded_env(tmp_path / "data"), capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1
    assert "notes.pdf" in result.stderr and "text" in result.stderr.lower()
    import json

    data = json.loads((out / "letter.json").read_text())
    assert data["status"] == "completed" and data["page_count"] == 1
    assert pages.cer(data["pages"][0]["text"], "\n".join(pages.PARAGRAPH_A)) < 0.05
    assert not (out / "notes.json").exists()


def test_two_clis_at_once_share_the_data_dir_without_harm(tmp_path: Path) -> None:
    """A second `pagemill ocr` while one runs: both finish, each with its own document's text."""
    data_dir = tmp_path / "data"
    first = pages.write_pdf(tmp_path / "first.pdf", [pages.text_page(pages.PARAGRAPH_A)] * 2)
    second = pages.write_pdf(tmp_path / "second.pdf", [pages.text_page(pages.PARAGRAPH_B)])
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "pagemill.cli", "ocr", str(path)],
            env=_embedded_env(data_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        )
        for path in (first, second)
    ]
    outputs = [proc.communicate(timeout=300) for proc in procs]
    for proc, (out, errors) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, errors[-3000:]
    assert [pages.cer(t, "\n".join(pages.PARAGRAPH_A)) < 0.05 for t in outputs[0][0].split("\f")] == [True, True]
    assert pages.cer(outputs[1][0], "\n".join(pages.PARAGRAPH_B)) < 0.05
    assert _processes_using(data_dir) == []
    # A third run afterwards finds the shared job store intact.
    again = subprocess.run(
        [sys.executable, "-m", "pagemill.cli", "ocr", str(second)],
        check=False, env=_embedded_env(data_dir), capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]


def test_ocr_mode_option_decides_whether_a_text_layer_is_read(tmp_path: Path) -> None:
    import json

    from tests import born_digital

    digital = born_digital.sample_pages()[:1]
    path = tmp_path / "letter.pdf"
    path.write_bytes(born_digital.pdf_bytes(digital))
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "pagemill.cli", "ocr", str(path), "--ocr-mode", "force", "--format", "json",
         "--out", str(out)],
        check=False, env=_embedded_env(tmp_path / "data"), capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (page,) = json.loads((out / "letter.json").read_text())["pages"]
    assert page["source"] == "ocr" and page["source_reason"] == "ocr_mode=force"
    assert pages.cer(page["text"], "\n".join(digital[0].lines)) < 0.05
    bad = subprocess.run(
        [sys.executable, "-m", "pagemill.cli", "ocr", str(path), "--ocr-mode", "sometimes"],
        check=False, env=_embedded_env(tmp_path / "data"), capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert bad.returncode == 2 and "auto" in bad.stderr and "force" in bad.stderr


def test_several_formats_are_written_side_by_side(tmp_path: Path) -> None:
    from tests import born_digital

    path = tmp_path / "letter.pdf"
    path.write_bytes(born_digital.pdf_bytes(born_digital.sample_pages()[:1]))
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "pagemill.cli", "ocr", str(path), "--format", "md", "--format", "hocr",
         "--format", "text", "--out", str(out)],
        check=False, env=_embedded_env(tmp_path / "data"), capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["letter.hocr", "letter.md", "letter.txt"]
    assert "Dear customer," in (out / "letter.md").read_text()
    assert 'class="ocrx_word"' in (out / "letter.hocr").read_text()
    assert (out / "letter.txt").read_text().startswith("Dear customer,")


def test_searchable_pdf_next_to_its_source_never_replaces_it(tmp_path: Path) -> None:
    path = tmp_path / "scan.pdf"
    path.write_bytes(pages.pdf_bytes([pages.text_page(pages.PARAGRAPH_A)]))
    before = path.read_bytes()
    result = subprocess.run(
        [sys.executable, "-m", "pagemill.cli", "ocr", str(path), "--format", "pdf", "--out", str(tmp_path)],
        check=False, env=_embedded_env(tmp_path / "data"), capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert path.read_bytes() == before
    made = tmp_path / "scan.ocr.pdf"
    assert made.name in result.stderr
    text = subprocess.run(["pdftotext", str(made), "-"], capture_output=True, text=True, check=True).stdout
    assert pages.cer(text, "\n".join(pages.PARAGRAPH_A)) < 0.05
