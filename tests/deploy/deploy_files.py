"""Loaders for deploy/ (Dockerfiles, compose, Kubernetes) and the facts the tests hold them to."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import yaml
from dockerfile_parse import DockerfileParser
from pydantic import AliasChoices

from pagemill.cli import main as pagemill_cli
from pipeline.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
BIN = Path(sys.executable).parent
DOCKERFILES = [DEPLOY / "Dockerfile", DEPLOY / "Dockerfile.gpu"]
COMPOSE_FILES = [DEPLOY / "compose.yaml", DEPLOY / "compose.gpu.yaml"]
# Kubernetes version the manifests are validated against (kubernetes-validate ships its schemas).
K8S_VERSION = "1.30.0"
# Kinds no bundled schema covers: checked field by field below.
CUSTOM_KINDS = {"ScaledObject", "Kustomization"}
# Variables set in deploy files that pipeline/settings.py does not read: each is read by
# something else we name here.
THIRD_PARTY_ENV = {
    "PATH": "the shell",
    "PYTHONUNBUFFERED": "CPython: logs reach the container runtime at once",
    "PYTHONDONTWRITEBYTECODE": "CPython: no .pyc writes on a read-only root filesystem",
    "MALLOC_ARENA_MAX": "glibc malloc: fewer arenas, lower worker RSS",
    "PIP_NO_CACHE_DIR": "pip, at image build",
    "PIP_DISABLE_PIP_VERSION_CHECK": "pip, at image build",
    "dramatiq_queue_prefetch": "dramatiq's Redis broker",
    "dramatiq_worker_timeout": "dramatiq's worker",
}
# Measured peak RSS of one OCR worker process with the onnx engine (benchmarks/ocr_throughput.py,
# 2 processes, 8 pages: 666-700 MB), MiB; plus Dramatiq's main process.
OCR_PROCESS_RSS_MIB = 700
OCR_MAIN_PROCESS_MIB = 100


def yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def k8s_files() -> list[Path]:
    return sorted((DEPLOY / "k8s").rglob("*.yaml"))


def k8s_objects() -> list[dict[str, Any]]:
    return [doc for path in k8s_files() for doc in yaml_docs(path)]


def by_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for doc in k8s_objects() if doc["kind"] == kind]


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(":", 1) for line in lines if line.strip() and not line.startswith("#"))


def procfile_argv(command: str, env: dict[str, str] | None = None) -> list[str]:
    """The argv a shell makes of a Procfile command, with ${VAR:-default} expanded."""
    out = subprocess.run(
        ["sh", "-c", f"set -- {command}; printf '%s\\0' \"$@\""],
        env={"PATH": os.environ["PATH"], **(env or {})}, capture_output=True, check=True, text=True,
    )  # fmt: skip
    return out.stdout.split("\0")[:-1]


def settings_env_names() -> set[str]:
    names: set[str] = set()
    for field in Settings.model_fields.values():
        if isinstance(field.validation_alias, AliasChoices):
            names.update(c for c in field.validation_alias.choices if isinstance(c, str))
    return names


def procfile_env_names() -> set[str]:
    """Variables the Procfile reads (${VAR...}) or sets (env VAR=...)."""
    text = (ROOT / "Procfile").read_text()
    return set(re.findall(r"\$\{(\w+)", text)) | set(re.findall(r"\b(\w+)=", text))


def load_compose(path: Path = DEPLOY / "compose.yaml") -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def pagemill_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Services that run the pagemill image (not Redis, PostgreSQL, MinIO)."""
    return {n: s for n, s in compose["services"].items() if str(s.get("image", "")).startswith("pagemill")}


def interpolate(value: str) -> str:
    """Compose's ${VAR:-default} with nothing set in the environment: the default."""
    return re.sub(r"\$\{\w+(?::?-([^}]*))?\}", lambda m: m.group(1) or "", value).replace("$$", "$")


def service_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    return {k: interpolate(str(v)) for k, v in env.items() if v is not None}


def deployments() -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in by_kind("Deployment")}


def pod_container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def pod_env(container: dict[str, Any]) -> dict[str, str]:
    """What the container's environment holds: its ConfigMaps and Secrets, then its own env."""
    maps = {m["metadata"]["name"]: m["data"] for m in by_kind("ConfigMap")}
    secrets = {s["metadata"]["name"]: s["stringData"] for s in by_kind("Secret")}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(maps[source["configMapRef"]["name"]])
        else:
            env.update(secrets[source["secretRef"]["name"]])
    env.update({e["name"]: e["value"] for e in container.get("env", [])})
    return env


def deployment_running(process_type: str) -> dict[str, Any]:
    (found,) = [d for d in deployments().values() if pod_container(d).get("args") == [process_type]]
    return found


def dockerfile(path: Path) -> DockerfileParser:
    # From bytes: given a path, dockerfile-parse takes any name but "Dockerfile" for a directory.
    return DockerfileParser(fileobj=io.BytesIO(path.read_bytes()))


def instructions(path: Path, name: str) -> list[str]:
    return [i["value"] for i in dockerfile(path).structure if i["instruction"] == name]


def copied_sources(path: Path) -> list[str]:
    return [
        src
        for value in instructions(path, "COPY")
        if not value.startswith("--from")
        for src in value.split()[:-1]
    ]


IMPORT_CHECK = """
import importlib, sys
for spec in sys.argv[1:]:
    module, _, attr = spec.partition(":")
    obj = importlib.import_module(module)
    assert not attr or callable(getattr(obj, attr)), spec
"""


def check_pagemill_args(args: list[str]) -> None:
    """Parse as the `pagemill` CLI would (unknown subcommand or option: click.UsageError)."""
    group: click.Group = pagemill_cli
    while True:
        assert args and args[0] in group.commands, f"`pagemill {' '.join(args)}`: no such subcommand"
        command = group.commands[args[0]]
        if not isinstance(command, click.Group):
            command.make_context(args[0], list(args[1:]))
            return
        group, args = command, args[1:]


def queue_key(namespace: str, queue: str) -> str:
    return f"{namespace}:{queue}"


def quantity(value: str) -> float:
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    for unit, factor in units.items():
        if value.endswith(unit):
            return float(value[: -len(unit)]) * factor
    return float(value)
