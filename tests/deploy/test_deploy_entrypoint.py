"""The image's entry point and HEALTHCHECK script, run for real (no container engine needed)."""

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
from tests.deploy.deploy_files import BIN, DEPLOY, ROOT


def _entrypoint(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(DEPLOY / "entrypoint.sh"), *args],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _healthcheck(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(DEPLOY / "healthcheck.py")], env=env, check=False, capture_output=True, text=True
    )


def test_entrypoint_runs_a_procfile_line_with_its_defaults_or_a_command_as_given(tmp_path: Path) -> None:
    procfile = tmp_path / "Procfile"
    procfile.write_text("# comment: not a type\nhello: printf '%s|' \"${GREETING:-hi}\" there\nhell: false\n")
    env = {"PATH": os.environ["PATH"], "PROCFILE": str(procfile), "TMPDIR": str(tmp_path)}
    assert _entrypoint(["hello"], env).stdout == "hi|there|"
    assert _entrypoint(["hello"], {**env, "GREETING": "yo"}).stdout == "yo|there|"
    assert (tmp_path / "pagemill-process").read_text() == "hello\n"
    assert _entrypoint(["echo", "hello"], env).stdout == "hello\n", "a command with arguments runs as given"
    assert _entrypoint(["hel"], env).returncode == 127, "no prefix match: `hel` is a command, not found"
    assert _entrypoint(["# comment"], env).returncode == 127


def test_image_entry_point_migrates_serves_web_and_the_healthcheck_follows_it(
    broker_settings: Settings, db_schema: str, tmp_path: Path
) -> None:
    assert broker_settings.redis_url and broker_settings.database_url
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "PROCFILE": str(ROOT / "Procfile"),
        "TMPDIR": str(tmp_path),
        "PORT": str(port),
        "REDIS_URL": broker_settings.redis_url,
        "DATABASE_URL": broker_settings.database_url.get_secret_value(),
        "PAGEMILL_DB_SCHEMA": db_schema,
        "PAGEMILL_REDIS_NAMESPACE": f"deploy-{uuid.uuid4().hex[:8]}",
        "PAGEMILL_DATA_DIR": str(tmp_path / "data"),
    }
    migrated = _entrypoint(["pagemill", "migrate"], env)
    assert migrated.returncode == 0 and f"schema {db_schema} at version" in migrated.stdout, migrated.stderr
    web = subprocess.Popen([str(DEPLOY / "entrypoint.sh"), "web"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert web.poll() is None and time.monotonic() < deadline, "web did not come up"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        # exec all the way down: the container's SIGTERM reaches uvicorn itself.
        assert "uvicorn" in " ".join(psutil.Process(web.pid).cmdline())
        assert _healthcheck(env).returncode == 0
        web.send_signal(signal.SIGTERM)
        # Uvicorn shuts down gracefully, then re-raises SIGTERM so its parent sees why it stopped.
        assert web.wait(timeout=30) in (0, -signal.SIGTERM)
        assert web.stderr is not None and "Application shutdown complete" in web.stderr.read()
    finally:
        if web.poll() is None:
            web.kill()
            web.wait()
    down = _healthcheck(env)
    assert down.returncode == 1 and "did not answer" in down.stderr
    (tmp_path / "pagemill-process").write_text("ocr\n")
    assert _healthcheck(env).returncode == 0, "worker containers have no port: healthy while running"
