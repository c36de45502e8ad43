"""The Procfile as a process manager runs it: honcho, the machine's Redis and PostgreSQL, HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import psutil

from pipeline.settings import Settings
from tests import pages
from tests.web.helpers import read_events

ROOT = Path(__file__).resolve().parents[2]
# How long honcho's processes get to come up, and to stop, seconds.
START_TIMEOUT_S = 90
STOP_TIMEOUT_S = 60


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, "honcho exited during start-up"
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{base}/readyz never answered 200")


def test_procfile_under_honcho_ocrs_an_upload_and_stops_cleanly(
    broker_settings: Settings, db_schema: str, tmp_path: Path
) -> None:
    assert broker_settings.redis_url and broker_settings.database_url
    port = _free_port()
    suffix = uuid.uuid4().hex[:8]
    env = dict(os.environ)
    env.update(
        REDIS_URL=broker_settings.redis_url,
        DATABASE_URL=broker_settings.database_url.get_secret_value(),
        PAGEMILL_DB_SCHEMA=db_schema,
        PAGEMILL_REDIS_NAMESPACE=f"procfile-{suffix}",
        PAGEMILL_DATA_DIR=str(tmp_path / "data"),
        # Queue names of our own: Celery's lists (the bridge) are not namespaced.
        CELERY_OCR_QUEUE=f"ocr-{suffix}",
        CELERY_DEFAULT_QUEUE=f"default-{suffix}",
        PAGEMILL_OCR_PROCESSES="1",
        PAGEMILL_DEFAULT_THREADS="2",
        PAGEMILL_LOG_FORMAT="json",
        PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
        PYTHONPATH=str(ROOT),
    )
    honcho = Path(sys.executable).parent / "honcho"
    log = (tmp_path / "honcho.log").open("wb")
    proc = subprocess.Popen(
        [str(honcho), "start", "-f", str(ROOT / "Procfile"), "-d", str(ROOT), "-p", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    children: list[psutil.Process] = []
    try:
        _wait_ready(base, proc)
        children = psutil.Process(proc.pid).children(recursive=True)
        names = " ".join(" ".join(c.cmdline()) for c in children)
        for expected in ("uvicorn", "actors.ocr", "actors.maintenance", "periodiq", "celery-bridge"):
            assert expected in names, f"{expected} is not running: {names}"
        pdf = pages.pdf_bytes([pages.text_page(pages.PARAGRAPH_A), pages.text_page(pages.PARAGRAPH_B)])
        response = httpx.post(
            f"{base}/api/documents", files={"file": ("two.pdf", pdf, "application/pdf")}, timeout=30
        )
        assert response.status_code == 202, response.text
        links = response.json()["links"]
        with httpx.Client(base_url=base, timeout=180) as client:
            events = read_events(client, links["events"])
            assert [name for name, _ in events] == ["page", "page", "end"], events
            assert events[-1][1]["status"] == "completed"
            text = client.get(links["text"]).text
        got = text.split("\f")
        assert pages.cer(got[0], "\n".join(pages.PARAGRAPH_A)) < 0.05
        assert pages.cer(got[1], "\n".join(pages.PARAGRAPH_B)) < 0.05
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C, as a developer stops honcho
        try:
            rc = proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
        finally:
            log.close()
    _gone, alive = psutil.wait_procs(children, timeout=5)
    assert alive == [], f"still running after honcho stopped: {[p.cmdline() for p in alive]}"
    output = (tmp_path / "honcho.log").read_text(errors="replace")
    assert "Killing worker process" not in output  # every worker stopped gracefully, none hung
    assert rc in (0, 130, -signal.SIGINT), output[-3000:]
