"""`pagemill doctor` names what is missing and how to fix it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _doctor(env_overrides: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.update(PAGEMILL_DATA_DIR=str(tmp_path / "data"), PYTHONPATH=str(ROOT), **env_overrides)
    return subprocess.run(
        [sys.executable, "-m", "pagemill.cli", "doctor"],
        check=False, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_doctor_passes_with_working_services(redis_url: str, database_url: str, tmp_path: Path) -> None:
    result = _doctor({"REDIS_URL": redis_url, "DATABASE_URL": database_url}, tmp_path)
    assert result.returncode == 0, result.stderr
    for name in ("redis", "postgresql", "storage", "ocr engine"):
        assert f"ok   {name}" in result.stderr


def test_doctor_names_the_broken_service_and_the_fix(database_url: str, tmp_path: Path) -> None:
    result = _doctor({"REDIS_URL": "redis://127.0.0.1:1/0", "DATABASE_URL": database_url}, tmp_path)
    assert result.returncode == 1
    assert "FAIL redis" in result.stderr and "fix: start Redis or fix REDIS_URL" in result.stderr


def test_doctor_rejects_a_bad_variable_by_name(tmp_path: Path) -> None:
    result = _doctor({"PADDLEOCR_MIN_CONFIDENCE": "2.5"}, tmp_path)
    assert result.returncode == 1
    assert "PADDLEOCR_MIN_CONFIDENCE" in result.stderr
