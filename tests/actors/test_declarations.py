"""Actor modules only declare: importing them builds no broker, reads no settings, connects nowhere.

The setup callable every worker command line names (``actors.broker:setup_broker``) then puts
each actor on the queue and time limit its settings give.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ACTOR_MODULES = sorted(f"actors.{p.stem}" for p in (ROOT / "actors").glob("*.py") if p.stem != "__init__")

# Fails on any socket connection, or any read of a pagemill/Celery/Redis variable, during the imports.
PROBE = """
import os, sys, importlib
seen = []
def hook(event, args):
    if event == "socket.connect":
        seen.append(f"connect {args[1]!r}")
sys.addaudithook(hook)
class Watch(dict):
    def __getitem__(self, key):
        if key.startswith(("PAGEMILL_", "CELERY_", "REDIS", "DATABASE")):
            seen.append(f"read {key}")
        return super().__getitem__(key)
for module in sys.argv[1:]:
    importlib.import_module(module)
import dramatiq
from actors.broker import Declarations
broker = dramatiq.get_broker()
print(type(broker).__name__, len(broker.actors), broker.get_actor("tasks.ocr_page").queue_name)
print("SEEN", seen)
try:
    broker.get_actor("tasks.ocr_page").send(document_id="x")
except RuntimeError as exc:
    print("REFUSED", exc)
"""


def _bare_env(**extra: str) -> dict[str, str]:
    keep = ("PATH", "HOME", "TMPDIR", "LANG")
    return {**{k: os.environ[k] for k in keep if k in os.environ}, "PYTHONPATH": str(ROOT), **extra}


def test_importing_every_actor_module_builds_no_broker_and_connects_nowhere() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *ACTOR_MODULES], env=_bare_env(), cwd=ROOT,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    first, seen, refused = out.stdout.splitlines()[-3:]
    kind, count, queue = first.split()
    assert kind == "Declarations" and int(count) >= 15, first
    assert queue == "ocr", "before setup an actor carries its queue role"
    assert seen == "SEEN []", seen
    assert refused.startswith("REFUSED") and "actors.broker:setup_broker" in refused


SETUP_PROBE = """
import actors.ocr, actors.maintenance
from actors.broker import setup_broker
broker = setup_broker()
page = broker.get_actor("tasks.ocr_page")
print(type(broker).__name__, page.broker is broker, page.queue_name, page.options["time_limit"],
      broker.get_actor("tasks.reap_lost_work").queue_name, "periodic" in broker.get_actor("tasks.reap_lost_work").options)
import actors.llm  # declared after setup: straight onto the real broker
print(broker.get_actor("tasks.summarize_document").queue_name)
"""


def test_setup_moves_declared_actors_onto_their_configured_queues_and_time_limits(redis_url: str) -> None:
    env = _bare_env(
        REDIS_URL=redis_url, CELERY_OCR_QUEUE="scans", CELERY_DEFAULT_QUEUE="chores", PAGEMILL_PAGE_TIME_LIMIT="42"
    )
    out = subprocess.run(
        [sys.executable, "-c", SETUP_PROBE], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["RedisBroker", "True", "scans", "42000", "chores", "True", "chores"]


def test_an_old_worker_command_line_without_the_setup_callable_says_what_to_run() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "dramatiq", "actors.notify", "--processes", "1", "--threads", "1"],
        env=_bare_env(), cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode != 0
    assert "actors.broker:setup_broker" in out.stderr
