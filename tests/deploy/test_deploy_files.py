"""deploy/ files against their schemas and the code: commands, variables, extras, packages.

No container engine runs here, so every file is parsed and validated instead: Kubernetes
manifests against the API's JSON schemas (kubernetes-validate, strict), compose files against
the Compose Specification schema, Dockerfiles with hadolint. Then what they say is held against
the code: the commands they run, the variables they set, the extras and files they install.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
import tomllib
import uuid
import zipfile
from importlib.resources import files
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from dramatiq.cli import make_argument_parser

from pipeline.settings import ExplicitSettings
from tests.deploy.deploy_files import (
    BIN,
    COMPOSE_FILES,
    CUSTOM_KINDS,
    DEPLOY,
    DOCKERFILES,
    IMPORT_CHECK,
    K8S_VERSION,
    ROOT,
    THIRD_PARTY_ENV,
    by_kind,
    check_pagemill_args,
    copied_sources,
    deployments,
    dockerfile,
    instructions,
    k8s_files,
    k8s_objects,
    load_compose,
    pagemill_services,
    pod_container,
    pod_env,
    procfile,
    procfile_argv,
    procfile_env_names,
    service_env,
    settings_env_names,
    yaml_docs,
)

# --- schemas ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", k8s_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_kubernetes_manifests_validate_against_the_api_schemas(path: Path) -> None:
    docs = yaml_docs(path)
    assert docs, f"{path} holds no object"
    problems = []
    for doc in docs:
        if doc["kind"] in CUSTOM_KINDS:
            continue
        # strict: an unknown or misspelt field is an error, as `kubectl apply` would make it.
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:  # its repr holds the whole schema
            where = ".".join(map(str, exc.path))
            problems.append(f"{doc['kind']} {doc['metadata']['name']}: {where}: {exc.message}")
    assert problems == []


def test_kustomization_applies_every_manifest_once() -> None:
    (kustomization,) = by_kind("Kustomization")
    listed = kustomization["resources"]
    assert len(listed) == len(set(listed))
    on_disk = {p.name for p in (DEPLOY / "k8s").glob("*.yaml")} - {"kustomization.yaml"}
    assert set(listed) == on_disk, "deploy/k8s/*.yaml and kustomization.yaml's resources differ"


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_files_validate_against_the_compose_spec(path: Path) -> None:
    schema = yaml.safe_load(
        files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text()
    )
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(load_compose(path))
    ]
    assert errors == []


def test_dockerfiles_pass_hadolint() -> None:
    out = subprocess.run(
        [str(BIN / "hadolint"), "--no-color", "--config", str(DEPLOY / ".hadolint.yaml"), *map(str, DOCKERFILES)],
        check=False, capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr


# --- Dockerfiles -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_runs_as_a_non_root_user_with_data_on_a_volume(path: Path) -> None:
    parser = dockerfile(path)
    assert len(instructions(path, "FROM")) >= 2, "build and runtime stages"
    user = instructions(path, "USER")[-1]
    assert user.split(":")[0] not in ("root", "0")
    env = parser.envs  # the final stage's
    assert env["MALLOC_ARENA_MAX"] == "2" and env["PYTHONUNBUFFERED"] == "1"
    assert instructions(path, "VOLUME")[-1] == f'["{env["PAGEMILL_DATA_DIR"]}"]'
    assert ExplicitSettings(PAGEMILL_DATA_DIR=env["PAGEMILL_DATA_DIR"]).data_dir == Path("/data")
    assert "/app/deploy/healthcheck.py" in instructions(path, "HEALTHCHECK")[-1]
    assert instructions(path, "ENTRYPOINT")[-1] == '["tini", "--", "/app/deploy/entrypoint.sh"]'
    cmd = yaml.safe_load(instructions(path, "CMD")[-1])
    assert len(cmd) == 1 and cmd[0] in procfile(), f"CMD {cmd} is not a Procfile process type"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_installs_the_packages_bootstrap_installs_and_extras_that_exist(path: Path) -> None:
    bootstrap = (ROOT / "scripts" / "bootstrap").read_text()
    apt = set(re.search(r"APT_PACKAGES=\(([^)]*)\)", bootstrap).group(1).split())  # type: ignore[union-attr]
    installed = " ".join(instructions(path, "RUN"))
    missing = sorted(pkg for pkg in apt if not re.search(rf"(?<![\w-]){re.escape(pkg)}(?![\w-])", installed))
    assert missing == [], f"Debian packages scripts/bootstrap installs but {path.name} does not"
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    (default,) = [
        v.split("=", 1)[1].strip('"') for v in instructions(path, "ARG") if v.startswith("PAGEMILL_EXTRAS=")
    ]
    named = [e for e in default.split(",") if e]
    comments = " ".join(i["value"] for i in dockerfile(path).structure if i["instruction"] == "COMMENT")
    named += [e for m in re.findall(r"PAGEMILL_EXTRAS=([\w,]+)", comments) for e in m.split(",") if e]
    assert named and set(named) <= set(extras), f"extras {named} vs pyproject's {sorted(extras)}"
    if path.name == "Dockerfile.gpu":
        assert "gpu" in default.split(",")
        assert re.search(r"pip uninstall -y onnxruntime onnxruntime-gpu", installed), (
            "both onnxruntimes installed"
        )


def test_files_the_dockerfiles_copy_build_a_wheel_with_every_module_the_commands_import(
    tmp_path: Path,
) -> None:
    sources = set(copied_sources(DOCKERFILES[0]))
    assert sources == set(copied_sources(DOCKERFILES[1]))
    context = tmp_path / "context"
    for src in sources:
        assert (ROOT / src).exists(), f"COPY {src}: not in the repository"
        if (ROOT / src).is_dir():
            shutil.copytree(ROOT / src, context / src, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (context / src).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / src, context / src)
    # What `pip install .` does in the build stage, on exactly the files COPY put there.
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "wheel"), str(context)],
        check=False, capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    (wheel,) = (tmp_path / "wheel").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {"web/app.py", "actors/ocr.py", "actors/llm.py", "actors/maintenance.py", "pagemill/cli/__init__.py", "pagemill/cli/ocr.py",
               "serverless_handler.py", "pagemill/samples/sample.pdf"}  # fmt: skip
    for argv in map(procfile_argv, procfile().values()):
        modules.update(a.replace(".", "/") + ".py" for a in argv if re.fullmatch(r"actors\.\w+", a))
    assert modules <= names, f"missing from the image's install: {sorted(modules - names)}"
    runtime_copies = {
        src for v in instructions(DOCKERFILES[0], "COPY") if "--from" not in v for src in v.split()[:-1]
    }
    assert {"Procfile", "deploy/entrypoint.sh", "deploy/healthcheck.py"} <= runtime_copies


def _dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    ignored = False
    for pattern in patterns:
        negated, pattern = pattern.startswith("!"), pattern.lstrip("!")
        if fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(path, pattern.rstrip("/") + "/*"):
            ignored = not negated
    return ignored


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_build_context_keeps_what_the_dockerfile_copies_and_nothing_else(path: Path) -> None:
    ignore = path.with_name(path.name + ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in ignore if line.strip() and not line.startswith("#")]
    tracked = subprocess.run(
        ["git", "ls-files", *copied_sources(path), "Procfile", "deploy/entrypoint.sh", "deploy/healthcheck.py"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    assert len(tracked) > 50
    assert [f for f in tracked if _dockerignored(f, patterns)] == [], (
        "COPY needs files the context leaves out"
    )
    for outside in (".venv/bin/python", "tests/conftest.py", "benchmarks/ocr_quality.py", ".git/HEAD"):
        assert _dockerignored(outside, patterns), outside


# --- commands ----------------------------------------------------------------------------------


# The broker argument of every dramatiq and periodiq command line.
SETUP = "actors.broker:setup_broker"


def _image_commands() -> dict[str, list[str]]:
    """Every command a container of the pagemill image runs, by where it is set."""
    commands = {f"{p.name}: CMD": yaml.safe_load(instructions(p, "CMD")[-1]) for p in DOCKERFILES}
    for path in COMPOSE_FILES:
        for name, service in pagemill_services(load_compose(path)).items():
            if "command" in service:
                commands[f"{path.name}: {name}"] = service["command"]
    for name, deployment in deployments().items():
        container = pod_container(deployment)
        assert "command" not in container, f"{name}: `command` would bypass the image's entry point"
        commands[f"k8s: {name}"] = container["args"]
    return commands


def test_every_image_command_is_a_procfile_process_type_or_a_real_cli_command() -> None:
    helps: set[str] = set()
    for where, argv in _image_commands().items():
        if len(argv) == 1 and argv[0] in procfile():
            continue  # the entry point runs that Procfile line (tested below)
        assert argv[0] == "pagemill", f"{where}: {argv} is neither a Procfile process type nor `pagemill ...`"
        check_pagemill_args(argv[1:])
        helps.add(argv[1])
    assert helps, "the compose file's migrate step runs `pagemill migrate`"
    for sub in helps:  # the console script the image installs, for real
        out = subprocess.run(
            [str(BIN / "pagemill"), sub, "--help"], check=False, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr


def test_procfile_lines_run_installed_programs_with_real_modules_and_queues(redis_url: str) -> None:
    settings = ExplicitSettings()
    queues = {"ocr": settings.ocr_queue, "default": settings.default_queue}
    imports: list[str] = []
    for process_type, command in procfile().items():
        argv = procfile_argv(command)
        if argv[0] == "env":
            argv = list(argv[1:])
            while "=" in argv[0]:
                argv.pop(0)
        program, *args = argv
        assert (BIN / program).is_file(), f"{process_type}: {program} is not installed"
        if program == "dramatiq":
            parsed = make_argument_parser().parse_args(args)  # exits on an unknown option
            imports += [parsed.broker, *parsed.modules]
            # The setup callable runs before the actor modules are imported (they only declare).
            assert parsed.broker == SETUP, f"{process_type}: the broker argument is {parsed.broker}"
            assert parsed.queues == [queues[process_type]], f"{process_type} consumes {parsed.queues}"
        elif program == "uvicorn":
            imports.append(args[0])
        elif program == "periodiq":
            assert args[0] == SETUP, f"{process_type}: periodiq's broker argument is {args[0]}"
            imports += [a for a in args if not a.startswith("-")]
        else:
            assert program == "pagemill", f"{process_type}: unexpected program {program}"
            check_pagemill_args(args)
            shown = subprocess.run([str(BIN / program), args[0], "--help"], check=False, capture_output=True)
            assert shown.returncode == 0, shown.stderr
    env = {**os.environ, "REDIS_URL": redis_url, "PAGEMILL_REDIS_NAMESPACE": f"deploy-{uuid.uuid4().hex[:8]}"}
    out = subprocess.run(
        [sys.executable, "-c", IMPORT_CHECK, *imports], env=env, check=False, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert {"web.app:create_app", "actors.ocr", "actors.maintenance"} <= set(imports)


def test_compose_and_kubernetes_run_every_procfile_process_type() -> None:
    types = set(procfile())
    compose = [
        s["command"] for s in pagemill_services(load_compose()).values() if len(s.get("command", [])) == 1
    ]
    assert sorted(c[0] for c in compose) == sorted(types), "one compose service per Procfile process type"
    k8s = [pod_container(d)["args"][0] for d in deployments().values()]
    assert sorted(k8s) == sorted(types), "one Deployment per Procfile process type"


# --- environment -------------------------------------------------------------------------------


def _deploy_env() -> dict[str, set[str]]:
    """Variable names each deploy file sets."""
    found: dict[str, set[str]] = {}
    for path in DOCKERFILES:
        found[path.name] = {n for v in instructions(path, "ENV") for n in re.findall(r"(?:^|\s)(\w+)=", v)}
    for path in COMPOSE_FILES:
        for name, service in pagemill_services(load_compose(path)).items():
            found[f"{path.name}: {name}"] = set(service.get("environment") or {})
    for doc in k8s_objects():
        names = set((doc.get("data") or {}) | (doc.get("stringData") or {}))
        if doc["kind"] == "Deployment":
            names = {e["name"] for e in pod_container(doc).get("env", [])}
        found[f"k8s: {doc['kind']} {doc.get('metadata', {}).get('name', '')}"] = names
    return found


def test_every_variable_set_is_one_the_code_or_the_procfile_reads() -> None:
    known = settings_env_names() | procfile_env_names() | set(THIRD_PARTY_ENV)
    unknown = {where: sorted(names - known) for where, names in _deploy_env().items() if names - known}
    assert unknown == {}, "set in deploy/ but read by nothing (renamed in pipeline/settings.py?)"
    procfile_own = procfile_env_names() - settings_env_names() - set(THIRD_PARTY_ENV)
    assert all(re.fullmatch(r"PORT|PAGEMILL_\w+", n) for n in procfile_own), procfile_own


def test_compose_and_pod_environments_load_as_settings_with_real_servers() -> None:
    environments = {f"compose {n}": service_env(s) for n, s in pagemill_services(load_compose()).items()}
    environments |= {f"k8s {n}": pod_env(pod_container(d)) for n, d in deployments().items()}
    for where, env in environments.items():
        settings = ExplicitSettings(**env)  # a bad value fails here, naming the variable
        # Real servers everywhere: no embedded Redis/PostgreSQL, no local-only storage.
        assert settings.redis_url and settings.database_url and settings.uses_s3, where
        assert settings.log_format == "json", where
