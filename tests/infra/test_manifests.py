"""Static checks of infra/: the Dockerfile, the KubeRay manifests, the Prefect Kubernetes work pool and prefect.yaml.

No container engine or Kubernetes cluster exists on CI machines, so these tests cannot build or apply anything.
What they can do is catch the ways such files rot while the code moves: an image tag nobody builds, a COPY of a
file that was renamed or is excluded by .dockerignore, a Ray version that differs from the pinned one, a CLI
option that no longer exists, a preset or flow entry point that was removed, a volume or ConfigMap referenced but
never declared. Every check reads the real files and the real CLI (`python -m trm <cmd> --help`).
"""

from __future__ import annotations

import ast
import json
import os
import posixpath
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
DOCKERFILE = INFRA / "Dockerfile"
KUBERAY = INFRA / "kuberay"
WORK_POOL = INFRA / "prefect" / "k8s-work-pool.json"
DEPLOY_DOC = REPO / "docs" / "deploy.md"
IMAGE_PATTERN = re.compile(r"^trm-pipeline:(?P<version>[0-9][^-]*)-(?P<variant>cpu|cu\d{3})$")
QUANTITY_PATTERN = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$")
SECRET_LOOKING_KEYS = re.compile(r"SECRET|PASSWORD|TOKEN|ACCESS_KEY", re.IGNORECASE)


# ----------------------------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------------------------


@cache
def dockerfile_instructions() -> tuple[tuple[int, str, str], ...]:
    """(line number, INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[int, str, str]] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(DOCKERFILE.read_text().splitlines(), start=1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if not pending:
            start = number
        if line.endswith("\\"):
            pending.append(line[:-1].strip())
            continue
        pending.append(line)
        text = " ".join(part for part in pending if part)
        pending = []
        instruction, _, arguments = text.partition(" ")
        out.append((start, instruction.upper(), arguments.strip()))
    assert not pending, f"{DOCKERFILE}: file ends inside a continued line"
    return tuple(out)


def dockerfile(instruction: str) -> list[str]:
    return [arguments for _, name, arguments in dockerfile_instructions() if name == instruction]


@cache
def dockerfile_args() -> dict[str, str]:
    """Default of every ARG (global and per stage)."""
    defaults: dict[str, str] = {}
    for arguments in dockerfile("ARG"):
        name, _, default = arguments.partition("=")
        defaults[name.strip()] = default.strip().strip('"')
    return defaults


@cache
def dockerfile_env() -> dict[str, str]:
    """Every ENV key=value (later wins), ${VAR} of earlier ENV/ARG values expanded."""
    env: dict[str, str] = {}
    known = dict(dockerfile_args())
    for arguments in dockerfile("ENV"):
        for token in shlex.split(arguments):
            key, sep, value = token.partition("=")
            assert sep, f"{DOCKERFILE}: ENV {arguments!r} is not in KEY=VALUE form"
            value = re.sub(r"\$\{?(\w+)\}?", lambda m: known.get(m.group(1), m.group(0)), value)
            env[key] = known[key] = value
    return env


def copy_operands(arguments: str) -> list[str]:
    """COPY's sources and destination, without flags such as --chown/--from/--link."""
    return [token for token in shlex.split(arguments) if not token.startswith("--")]


def workdir() -> str:
    dirs = dockerfile("WORKDIR")
    assert len(dirs) == 1, f"{DOCKERFILE}: expected one WORKDIR, found {dirs}"
    return dirs[0]


@cache
def lock_versions() -> dict[str, str]:
    versions = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        name, sep, version = line.strip().partition("==")
        if sep:
            versions[name.lower()] = version
    return versions


@cache
def pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


@cache
def kuberay_documents() -> tuple[tuple[str, dict[str, Any]], ...]:
    docs = []
    for path in sorted(KUBERAY.glob("*.yaml")):
        for index, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if doc is None:
                continue
            assert isinstance(doc, dict), f"{path}: document {index} is not a mapping"
            docs.append((f"{path.relative_to(REPO)}#{index}", doc))
    return tuple(docs)


def documents_of_kind(kind: str) -> list[tuple[str, dict[str, Any]]]:
    return [(where, doc) for where, doc in kuberay_documents() if doc.get("kind") == kind]


@cache
def config_map_data() -> dict[str, str]:
    maps = documents_of_kind("ConfigMap")
    assert [doc["metadata"]["name"] for _, doc in maps] == ["trm-config"], "expected exactly the trm-config ConfigMap"
    return maps[0][1]["data"]


def declared_names(kind: str) -> set[str]:
    return {doc["metadata"]["name"] for _, doc in documents_of_kind(kind)}


def documented_secrets() -> set[str]:
    """Secrets are never committed; each one a manifest uses must be created by a command in docs/deploy.md."""
    return set(re.findall(r"kubectl create secret generic ([a-z0-9-]+)", DEPLOY_DOC.read_text()))


@cache
def work_pool_template() -> dict[str, Any]:
    return json.loads(WORK_POOL.read_text())


def variable_defaults(template: dict[str, Any]) -> dict[str, Any]:
    properties = template["variables"]["properties"]
    return {name: spec["default"] for name, spec in properties.items() if spec.get("default") is not None}


def rendered_work_pool_job() -> dict[str, Any]:
    """The Job a Prefect Kubernetes worker would create with the pool's defaults (Prefect's own templating)."""
    from prefect.utilities.templating import apply_values

    template = work_pool_template()
    values = {
        **variable_defaults(template),
        "name": "retrain-smoke",
        "command": "prefect flow-run execute",
        "env": {"PREFECT_API_URL": "http://prefect-server:4200/api"},
        "labels": {},
    }
    job = apply_values(template["job_configuration"]["job_manifest"], values)
    assert "{{" not in json.dumps(job), f"{WORK_POOL}: placeholders left after rendering: {json.dumps(job)}"
    return job


def pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    """Every pod template in infra/: RayCluster/RayJob head and worker groups, and the Prefect flow-run Job."""
    for where, doc in kuberay_documents():
        if doc.get("kind") == "RayCluster":
            spec = doc["spec"]
        elif doc.get("kind") == "RayJob":
            spec = doc["spec"].get("rayClusterSpec")
            if spec is None:
                continue
        else:
            continue
        yield f"{where} head", spec["headGroupSpec"]["template"]["spec"]
        for group in spec.get("workerGroupSpecs", []):
            yield f"{where} worker group {group['groupName']}", group["template"]["spec"]
    yield f"{WORK_POOL.relative_to(REPO)} (rendered)", rendered_work_pool_job()["spec"]["template"]["spec"]


def requests_gpu(container: dict[str, Any]) -> bool:
    resources = container.get("resources", {})
    amounts = [resources.get(kind, {}).get("nvidia.com/gpu", 0) for kind in ("requests", "limits")]
    return any(int(amount) > 0 for amount in amounts)


# ----------------------------------------------------------------------------------------------------------------
# The CLI, as the manifests and docs use it
# ----------------------------------------------------------------------------------------------------------------


@cache
def cli_root() -> Any:
    import typer.main

    from trm.cli import app

    return typer.main.get_command(app)


def is_group(command: Any) -> bool:
    return hasattr(command, "commands")  # typer ships its own click: duck-type instead of isinstance


def resolve_cli(tokens: list[str]) -> tuple[list[str], Any, list[str]]:
    """Walk `trm` sub-commands along ``tokens``; returns (command path, leaf command, remaining tokens)."""
    command = cli_root()
    path: list[str] = []
    rest = list(tokens)
    while is_group(command) and rest and not rest[0].startswith("-"):
        name = rest.pop(0)
        sub = command.commands.get(name)
        assert sub is not None, f"`trm {' '.join([*path, name])}` does not exist; known: {sorted(command.commands)}"
        path.append(name)
        command = sub
    assert not is_group(command), f"`trm {' '.join(path)}` is a group, not a command"
    return path, command, rest


def option_names(command: Any) -> set[str]:
    names = set()
    for param in command.params:
        names.update(getattr(param, "opts", []))
        names.update(getattr(param, "secondary_opts", []))
    return names | {"--help"}


@cache
def cli_help(path: tuple[str, ...]) -> str:
    """`python -m trm PATH --help`, run for real: the entry point the image and every manifest use."""
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    done = subprocess.run(
        [sys.executable, "-m", "trm", *path, "--help"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"`python -m trm {' '.join(path)} --help` failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def mentions_option(help_text: str, option: str) -> bool:
    """Whole-word match: `--job-var` must not pass because `--job-variable` exists."""
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", help_text) is not None


def check_trm_command(tokens: list[str], where: str, run_help: bool = True) -> tuple[list[str], Any, list[str]]:
    """Every option given exists on the real command; with ``run_help`` (commands that manifests run) also
    `python -m trm <cmd> --help` runs, as the image would, and lists them."""
    path, command, rest = resolve_cli(tokens)
    help_text = cli_help(tuple(path)) if run_help else None
    known = option_names(command)
    for token in rest:
        if token.startswith("--"):
            option = token.split("=", 1)[0]
            assert option in known, f"{where}: `trm {' '.join(path)}` has no option {option}; it has {sorted(known)}"
            assert help_text is None or mentions_option(help_text, option), (
                f"{where}: {option} missing from `python -m trm {' '.join(path)} --help`"
            )
    return path, command, rest


def trm_invocations(text: str) -> Iterator[list[str]]:
    """Token lists after `python -m trm` / `trm` in shell-like text (continuations joined, comments cut)."""
    joined = re.sub(r"\\\n\s*", " ", text)
    for line in joined.splitlines():
        line = line.split(" #", 1)[0].strip().strip("`")
        for match in re.finditer(r"(?:^|[\s;&|(`'\"])(?:python3? -m trm|trm)\s+([a-z][^;&|`'\"]*)", line):
            try:
                tokens = shlex.split(match.group(1))
            except ValueError:
                tokens = match.group(1).split()
            if tokens and tokens[0] in cli_root().commands:
                yield tokens


def shell_snippets(markdown: str) -> str:
    """The contents of the fenced code blocks of a markdown file."""
    return "\n".join(re.findall(r"```[a-z]*\n(.*?)```", markdown, flags=re.DOTALL))


# ----------------------------------------------------------------------------------------------------------------
# Every file parses
# ----------------------------------------------------------------------------------------------------------------


def test_every_infra_file_parses_and_is_checked_here():
    seen = []
    for path in sorted(p for p in INFRA.rglob("*") if p.is_file()):
        rel = path.relative_to(REPO)
        if path.suffix in {".yaml", ".yml"}:
            docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
            assert docs, f"{rel}: empty"
            for doc in docs:
                assert {"apiVersion", "kind", "metadata"} <= set(doc), f"{rel}: not a Kubernetes object: {doc}"
        elif path.suffix == ".json":
            json.loads(path.read_text())
        elif path.name == "Dockerfile":
            assert dockerfile_instructions()
        elif path.suffix == ".md":
            continue
        else:
            pytest.fail(f"{rel}: no static check knows this kind of file; add one to {Path(__file__).name}")
        seen.append(str(rel))
    assert {
        "infra/Dockerfile",
        "infra/kuberay/raycluster.yaml",
        "infra/kuberay/rayjob.yaml",
        "infra/prefect/k8s-work-pool.json",
    } <= set(seen)


# ----------------------------------------------------------------------------------------------------------------
# Dockerfile
# ----------------------------------------------------------------------------------------------------------------

KNOWN_INSTRUCTIONS = {
    "FROM",
    "ARG",
    "ENV",
    "RUN",
    "COPY",
    "ADD",
    "WORKDIR",
    "USER",
    "LABEL",
    "ENTRYPOINT",
    "CMD",
    "EXPOSE",
    "VOLUME",
    "SHELL",
    "HEALTHCHECK",
    "STOPSIGNAL",
    "ONBUILD",
}


def test_dockerfile_stages_and_base_image():
    instructions = dockerfile_instructions()
    unknown = [(n, name) for n, name, _ in instructions if name not in KNOWN_INSTRUCTIONS]
    assert not unknown, f"{DOCKERFILE}: unknown instructions {unknown}"
    first_from = next(i for i, (_, name, _) in enumerate(instructions) if name == "FROM")
    assert all(name == "ARG" for _, name, _ in instructions[:first_from]), "only ARG may come before the first FROM"

    stages = []
    for arguments in dockerfile("FROM"):
        parts = arguments.split()
        image = re.sub(r"\$\{?(\w+)\}?", lambda m: dockerfile_args()[m.group(1)], parts[0])
        stages.append((image, parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None))
    names = {name for _, name in stages if name}
    for arguments in dockerfile("COPY"):
        source = re.search(r"--from=(\S+)", arguments)
        if source:
            assert source.group(1) in names, f"COPY --from={source.group(1)}: no such stage; stages: {sorted(names)}"

    runtime_image = stages[-1][0]
    match = re.fullmatch(r"python:(\d+\.\d+)-slim-\w+", runtime_image)
    assert match, f"default base image {runtime_image!r} is not an official python:X.Y-slim image"
    from packaging.specifiers import SpecifierSet

    requires = SpecifierSet(pyproject()["project"]["requires-python"])
    assert f"{match.group(1)}.0" in requires, f"base Python {match.group(1)} violates requires-python {requires}"


def test_dockerfile_installs_the_pinned_stack():
    args = dockerfile_args()
    assert args["TORCH_VARIANT"] == "cpu", "the default build must be the CPU variant"
    assert args["TORCH_VERSION"] == lock_versions()["torch"], "torch in the image differs from requirements.lock"
    runs = dockerfile("RUN")
    installs = [r for r in runs if "pip install" in r and "--upgrade" not in r]
    assert installs and all("-c requirements.lock" in r for r in installs), "every pip install must use the lock"
    torch_install = next(r for r in installs if "torch==" in r)
    assert "download.pytorch.org/whl/${TORCH_VARIANT}" in torch_install, "torch must come from the variant's index"
    assert any("pip check" in r for r in runs), "the image build must fail on broken requirements (pip check)"
    assert any(" -e ." in r for r in runs), "install editable: trm.paths.REPO_ROOT must be the checkout folder"


def test_dockerfile_entry_point_and_tools():
    entry = json.loads(dockerfile("ENTRYPOINT")[-1])
    assert entry[-3:] == ["python", "-m", "trm"], f"entry point must be `python -m trm`, is {entry}"
    apt = " ".join(r for r in dockerfile("RUN") if "apt-get install" in r)
    # tini runs the entry point; KubeRay's probes run `bash -c "wget ... | grep success"` in every Ray pod.
    for tool in {*entry[:-3], "bash", "wget"} - {"--"}:
        assert re.search(rf"\b{re.escape(tool)}\b", apt), f"{tool} is used but not installed by apt-get"
    assert dockerfile_env()["PATH"].startswith("/opt/trm/venv/bin:"), "the venv must come first on PATH (dvc `python`)"
    # KubeRay runs `bash -lc "ray start ..."`; Debian's /etc/profile resets PATH, then sources /etc/profile.d.
    profile = [r for r in dockerfile("RUN") if "/etc/profile.d/" in r]
    assert profile and "/opt/trm/venv/bin" in profile[0], "a login shell (KubeRay's bash -lc) would lose the venv"
    assert dockerfile("USER") and dockerfile("USER")[-1] not in {"root", "0"}, "the image must not run as root"
    # The entry point works: the same module the image runs.
    assert "train" in cli_help(()) and "data" in cli_help(())


def test_dockerfile_copies_exist_and_are_not_ignored():
    import pathspec

    ignore = pathspec.GitIgnoreSpec.from_lines((REPO / ".dockerignore").read_text().splitlines())
    copies = [a for a in dockerfile("COPY") if "--from=" not in a]
    assert copies, "the Dockerfile copies nothing from the build context"
    for arguments in copies:
        *sources, _dest = copy_operands(arguments)
        for source in sources:
            if source == ".":
                continue
            assert (REPO / source).exists(), f"COPY {source}: no such file in the repository"
            assert not ignore.match_file(source), f"COPY {source}: excluded by .dockerignore"
    assert any(copy_operands(a)[0] == "." for a in copies), "the project itself (COPY . .) is never copied"
    needed = [
        "pyproject.toml",
        "requirements.lock",
        "dvc.yaml",
        "params.yaml",
        ".dvc/config",
        "trm/cli/__init__.py",
        "trm/presets/smoke.yaml",
        "pipelines/__init__.py",
        "prefect.yaml",
        "scripts/install.sh",
    ]
    needed += [str(p.relative_to(REPO)) for p in (REPO / "trm").rglob("*.py") if "__pycache__" not in p.parts]
    for rel in needed:
        assert (REPO / rel).exists(), f"{rel}: expected in the repository (the image needs it)"
        assert not ignore.match_file(rel), f"{rel}: needed at run time but excluded by .dockerignore"
    for secret_or_bulk in [
        ".dvc/config.local",
        ".git/config",
        ".venv/bin/python",
        "data/sudoku-4x4/train.parquet",
        "artifacts/models/x/1/manifest.json",
        "runs/smoke/state.json",
        ".env",
        ".dvc/cache/x",
    ]:
        assert ignore.match_file(secret_or_bulk), f"{secret_or_bulk}: must be excluded by .dockerignore"


def test_image_layout_matches_dvc_stage_deps():
    """dvc.yaml deps say `../shared/datasets/...` (relative to the checkout): that must land on the datasets."""
    shared_copy = next(a for a in dockerfile("COPY") if "--from=shared-datasets" in a)
    datasets_dir = copy_operands(shared_copy)[-1].rstrip("/")
    assert dockerfile_env()["TRM_DATASETS"] == datasets_dir
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    shared_deps = [d for s in stages.values() for d in s.get("deps", []) if d.startswith("../")]
    assert shared_deps, "dvc.yaml has no ../shared deps (update this test if that changed on purpose)"
    for dep in shared_deps:
        resolved = posixpath.normpath(posixpath.join(workdir(), dep))
        assert resolved.startswith(datasets_dir + "/"), f"dvc dep {dep} resolves to {resolved} in the image"
    assert dockerfile_env().get("TRM_PROJECT_DIR", workdir()) == workdir()


# ----------------------------------------------------------------------------------------------------------------
# Images, Kubernetes objects, KubeRay
# ----------------------------------------------------------------------------------------------------------------


def test_every_image_is_one_the_dockerfile_builds():
    version = pyproject()["project"]["version"]
    count = 0
    for where, pod in pod_specs():
        for container in pod["containers"]:
            match = IMAGE_PATTERN.match(container["image"])
            assert match, f"{where}: image {container['image']!r} is not trm-pipeline:<version>-<cpu|cuXYZ>"
            assert match["version"] == version, f"{where}: image version {match['version']} != project {version}"
            if requests_gpu(container):
                assert match["variant"] != "cpu", f"{where}: requests a GPU but runs the CPU image"
            count += 1
    assert count >= 5
    # The CUDA tag in the manifests is a variant the Dockerfile documents how to build.
    for variant in {IMAGE_PATTERN.match(c["image"])["variant"] for _, p in pod_specs() for c in p["containers"]}:
        assert variant == "cpu" or f"TORCH_VARIANT={variant}" in DOCKERFILE.read_text()


def test_pods_reference_declared_volumes_config_and_secrets():
    claims, maps, secrets = declared_names("PersistentVolumeClaim"), declared_names("ConfigMap"), documented_secrets()
    assert secrets, f"{DEPLOY_DOC}: no `kubectl create secret generic NAME` command"
    for where, pod in pod_specs():
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for volume in volumes.values():
            if "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]["claimName"]
                assert claim in claims, f"{where}: PVC {claim} is not declared in infra/kuberay/common.yaml"
        for container in pod["containers"]:
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes, f"{where}: mount {mount['name']} has no volume"
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in maps, f"{where}: unknown ConfigMap {source}"
                if "secretRef" in source:
                    assert source["secretRef"]["name"] in secrets, f"{where}: secret {source} is never created"
            for kind in ("requests", "limits"):
                for resource, amount in container.get("resources", {}).get(kind, {}).items():
                    assert QUANTITY_PATTERN.match(str(amount)), f"{where}: {kind}.{resource}={amount!r}"
            if requests_gpu(container):
                resources = container["resources"]
                assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"]
            data_mounts = [m for m in container.get("volumeMounts", []) if m["name"] == "data"]
            for mount in data_mounts:
                assert mount["mountPath"] == f"{workdir()}/data", f"{where}: data volume not at the checkout's data/"


def test_config_map_matches_the_image_and_holds_no_secrets():
    data = config_map_data()
    assert data["TRM_PROJECT_DIR"] == workdir()
    assert data["TRM_DATASETS"] == dockerfile_env()["TRM_DATASETS"]
    for key in ("TRM_STORE", "TRM_RAY_STORAGE"):
        assert data[key].startswith("s3://"), f"{key} should point at the S3 bucket"
    assert not [k for k in data if SECRET_LOOKING_KEYS.search(k)], "credentials belong in the Secret, not here"
    assert all(isinstance(v, str) for v in data.values()), "ConfigMap values must be strings"


def ray_cluster_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    for where, doc in kuberay_documents():
        if doc["kind"] == "RayCluster":
            yield where, doc["spec"]
        elif doc["kind"] == "RayJob" and "rayClusterSpec" in doc["spec"]:
            yield where, doc["spec"]["rayClusterSpec"]


def test_ray_clusters_match_the_pinned_ray():
    specs = list(ray_cluster_specs())
    assert len(specs) >= 2, "expected the RayCluster and the RayJob's cluster"
    for where, doc in kuberay_documents():
        if doc["kind"] in {"RayCluster", "RayJob"}:
            assert doc["apiVersion"] == "ray.io/v1", f"{where}: use the stable KubeRay API ray.io/v1"
    for where, spec in specs:
        assert spec["rayVersion"] == lock_versions()["ray"], f"{where}: rayVersion != ray in requirements.lock"
        head = spec["headGroupSpec"]
        ports = {p["containerPort"] for p in head["template"]["spec"]["containers"][0].get("ports", [])}
        assert {6379, 8265, 10001} <= ports, f"{where}: head must expose GCS, dashboard and client ports"
        groups = spec.get("workerGroupSpecs", [])
        assert len({g["groupName"] for g in groups}) == len(groups), f"{where}: duplicate worker group names"
        for group in groups:
            bounds = (group["minReplicas"], group["replicas"], group["maxReplicas"])
            assert 0 <= bounds[0] <= bounds[1] <= bounds[2], f"{where}: {group['groupName']} min/replicas/max {bounds}"
        for params in [head.get("rayStartParams", {})] + [g.get("rayStartParams", {}) for g in groups]:
            assert all(isinstance(v, str) for v in params.values()), f"{where}: rayStartParams values must be strings"


def preset_dataset(preset: str, where: str) -> str | None:
    """data.name of a preset, following `extends:` (read as YAML: no torch import needed for a name)."""
    seen = []
    while preset and preset not in seen:
        seen.append(preset)
        path = REPO / "trm" / "presets" / f"{preset}.yaml"
        assert path.is_file(), f"{where}: preset {preset} does not exist (chain {seen})"
        body = yaml.safe_load(path.read_text()) or {}
        name = (body.get("data") or {}).get("name")
        if name:
            return name
        preset = body.get("extends")
    return None


def expand(text: str, values: dict[str, str]) -> str:
    """Shell-style $VAR / ${VAR} / "$VAR" expansion with the ConfigMap's values (unknown names: a placeholder)."""
    return re.sub(r"\$\{?(\w+)\}?", lambda m: values.get(m.group(1), "placeholder"), text)


def test_rayjob_entrypoint_builds_the_data_then_runs_a_real_training_command():
    """The entrypoint is a shell line: `dvc repro STAGE && python -m trm train --ray ...`. Each part must exist,
    run where the image keeps the checkout, and the stage built must be the dataset the preset trains on."""
    jobs = documents_of_kind("RayJob")
    assert jobs, "no RayJob in infra/kuberay"
    stages = set(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"])
    for where, job in jobs:
        line = expand(job["spec"]["entrypoint"], config_map_data())
        parts = [shlex.split(part) for part in line.split("&&")]
        trainings = [p for p in parts if p[:3] == ["python", "-m", "trm"]]
        builds = [p for p in parts if p[:3] == ["python", "-m", "dvc"]]
        assert len(trainings) == 1 and parts[-1] is trainings[0], f"{where}: must end in one `python -m trm` command"
        assert len(parts) == len(trainings) + len(builds), f"{where}: unexpected commands in {line!r}"

        path, command, rest = check_trm_command(trainings[0][3:], where)
        assert path == ["train"] and "--ray" in rest, f"{where}: the job must be `trm train --ray`"
        command.make_context("train", list(rest), resilient_parsing=False)  # types and required options
        preset = rest[rest.index("--preset") + 1]
        dataset = preset_dataset(preset, where)
        assert dataset in stages, f"{where}: preset {preset} trains on {dataset!r}, which has no DVC stage"

        for build in builds:
            args = build[3:]
            assert args[:2] == ["--cd", workdir()], f"{where}: dvc must run in the image's checkout {workdir()}"
            assert args[2] == "repro", f"{where}: expected `dvc repro`, got {args}"
            targets = [a for a in args[3:] if not a.startswith("-")]
            assert targets == [dataset], f"{where}: builds {targets} but preset {preset} trains on {dataset}"
        assert builds, f"{where}: nothing builds or pulls the dataset on the cluster before training"

        workers = int(rest[rest.index("--workers") + 1]) if "--workers" in rest else 1
        groups = job["spec"]["rayClusterSpec"]["workerGroupSpecs"]
        gpu_pods = sum(g["replicas"] for g in groups if requests_gpu(g["template"]["spec"]["containers"][0]))
        cpu_pods = sum(g["replicas"] for g in groups) - gpu_pods
        assert workers <= max(gpu_pods, cpu_pods), f"{where}: {workers} workers but only {gpu_pods} GPU pods"


def test_every_trm_command_in_infra_and_docs_exists():
    """Commands quoted in manifests, comments and docs must run: sub-command and options checked on the real CLI
    (commands in infra/ also through `python -m trm <cmd> --help`; docs in-process only, to stay fast)."""
    sources = {p: p.read_text() for p in INFRA.rglob("*") if p.is_file()}
    for doc in (DEPLOY_DOC, REPO / "README.md"):
        if doc.exists():
            sources[doc] = shell_snippets(doc.read_text())
    found = 0
    for path, text in sources.items():
        for tokens in trm_invocations(text):
            check_trm_command(tokens, str(path.relative_to(REPO)), run_help=path.is_relative_to(INFRA))
            found += 1
    assert found >= 5, f"only {found} trm commands found in infra/ and docs: is the scan broken?"


def test_flow_commands_in_docs_exist():
    """`python -m pipelines.<flow> ...` lines in the README and docs/deploy.md: the module runs and has the options."""
    text = "\n".join(shell_snippets(doc.read_text()) for doc in (REPO / "README.md", DEPLOY_DOC) if doc.exists())
    calls: dict[str, set[str]] = {}
    for module, rest in re.findall(r"python3? -m (pipelines\.\w+)([^\n]*)", re.sub(r"\\\n\s*", " ", text)):
        calls.setdefault(module, set()).update(re.findall(r"(?<=\s)(--[a-z][a-z-]*)", rest))
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    for module, options in calls.items():
        done = subprocess.run(
            [sys.executable, "-m", module, "--help"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, f"`python -m {module} --help` failed:\n{done.stderr[-2000:]}"
        for option in options:
            assert mentions_option(done.stdout, option), f"`python -m {module}` has no option {option} (README/docs)"


# ----------------------------------------------------------------------------------------------------------------
# Prefect: the Kubernetes work pool and the deployments
# ----------------------------------------------------------------------------------------------------------------


def test_work_pool_template_is_accepted_by_prefect():
    from jsonschema import Draft202012Validator
    from prefect.server.schemas.actions import WorkPoolCreate

    template = work_pool_template()
    WorkPoolCreate(name="trm-k8s", type="kubernetes", base_job_template=template)  # the server's own validation
    schema = template["variables"]
    Draft202012Validator.check_schema(schema)
    errors = list(Draft202012Validator(schema).iter_errors(variable_defaults(template)))
    assert not errors, f"{WORK_POOL}: defaults violate the variables schema: {[e.message for e in errors]}"
    for key in ("command", "env", "labels", "name", "namespace", "job_manifest"):
        assert key in template["job_configuration"], f"{WORK_POOL}: job_configuration lacks {key}"


def test_rendered_work_pool_job_runs_the_flow_in_the_image():
    job = rendered_work_pool_job()
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and (pod["parallelism"], pod["completions"]) == (1, 1)
    container = pod["containers"][0]
    # prefect-kubernetes requires this container name, and puts the flow-run command into `args`.
    assert container["name"] == "prefect-job"
    assert container["args"] == "prefect flow-run execute"
    # The image's ENTRYPOINT (python -m trm) must be replaced, or the pod would run `trm prefect flow-run ...`.
    entry = json.loads(dockerfile("ENTRYPOINT")[-1])
    assert container["command"] == entry[: entry.index("python")], "command must keep tini but drop python -m trm"
    assert container["workingDir"] == workdir()
    assert job["metadata"]["generateName"] == "retrain-smoke-"


def prefect_yaml() -> dict[str, Any]:
    path = REPO / "prefect.yaml"
    assert path.exists(), "prefect.yaml is missing (deployments of issue 5)"
    return yaml.safe_load(path.read_text())


def is_flow_function(file: Path, name: str) -> bool:
    tree = ast.parse(file.read_text())
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            for decorator in node.decorator_list:
                target = decorator.func if isinstance(decorator, ast.Call) else decorator
                if (getattr(target, "id", None) or getattr(target, "attr", None)) == "flow":
                    return True
    return False


def test_prefect_deployments_point_at_real_flows_presets_and_datasets():
    config = prefect_yaml()
    deployments = config.get("deployments") or []
    assert deployments, "prefect.yaml declares no deployments"
    presets = {p.stem for p in (REPO / "trm" / "presets").glob("*.yaml")}
    stages = set(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"])
    for deployment in deployments:
        name = deployment["name"]
        file, _, function = deployment["entrypoint"].partition(":")
        assert (REPO / file).is_file(), f"deployment {name}: entrypoint file {file} does not exist"
        assert is_flow_function(REPO / file, function), f"deployment {name}: {function} is not a @flow in {file}"
        parameters = deployment.get("parameters") or {}
        if "preset" in parameters:
            assert parameters["preset"] in presets, f"deployment {name}: unknown preset {parameters['preset']}"
        if "dataset" in parameters:
            assert parameters["dataset"] in stages, (
                f"deployment {name}: dataset {parameters['dataset']} has no DVC stage"
            )


def test_deploy_doc_uses_real_prefect_options():
    """The Prefect commands docs/deploy.md tells people to run accept the options it gives them."""
    text = shell_snippets(DEPLOY_DOC.read_text())
    assert "--base-job-template infra/prefect/k8s-work-pool.json" in text
    text = re.sub(r"\\\n\s*", " ", text)  # join continued lines
    commands = {
        ("work-pool", "create"): re.findall(r"prefect (?:--no-prompt )?work-pool create .*", text),
        ("deploy",): re.findall(r"(?:prefect|--no-prompt) deploy .*", text),
        ("deployment", "run"): re.findall(r"prefect deployment run .*", text),
    }
    helps = prefect_help(list(commands))
    for sub, lines in commands.items():
        assert lines, f"{DEPLOY_DOC}: no `prefect {' '.join(sub)}` command"
        for line in lines:
            for option in re.findall(r"(?<=\s)(--[a-z][a-z-]*)", line):
                assert mentions_option(helps[sub], option), (
                    f"`prefect {' '.join(sub)}` has no option {option} (docs/deploy.md)"
                )


PREFECT_HELP_SCRIPT = """
import contextlib, io, json, sys
from prefect.cli import app
out = {}
for args in json.loads(sys.argv[1]):
    sys.argv = ["prefect", *args, "--help"]
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        try:
            app()
        except SystemExit:
            pass
    out[" ".join(args)] = buffer.getvalue()
print(json.dumps(out))
"""


def prefect_help(commands: list[tuple[str, ...]]) -> dict[tuple[str, ...], str]:
    """`prefect <cmd> --help` of the installed Prefect for several commands in ONE interpreter (~2 s, not ~5 s each)."""
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    done = subprocess.run(
        [sys.executable, "-c", PREFECT_HELP_SCRIPT, json.dumps([list(c) for c in commands])],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    helps = json.loads(done.stdout.strip().splitlines()[-1])
    for command in commands:
        assert "Usage: prefect" in helps[" ".join(command)], f"`prefect {' '.join(command)} --help` printed no usage"
    return {command: helps[" ".join(command)] for command in commands}


def test_docs_reference_existing_files():
    for doc in (DEPLOY_DOC, INFRA / "README.md", REPO / "README.md"):
        if not doc.exists():
            continue
        text = doc.read_text()
        for rel in set(re.findall(r"(?<![\w/.-])((?:infra|docs|scripts|pipelines|trm|tests|bench)/[\w./-]*\w)", text)):
            assert (REPO / rel).exists(), f"{doc.relative_to(REPO)} mentions {rel}, which does not exist"


def test_readme_starts_with_the_two_commands():
    """Issue 5: the README's first lines are the fresh-machine command and the test command, and CI runs the latter."""
    lines = (REPO / "README.md").read_text().splitlines()
    head = lines[: lines.index("```", 1) + 1] if lines[0].startswith("```") else lines[:3]
    commands = [line.split("#", 1)[0].strip() for line in head if line.startswith("bash ")]
    assert commands == ["bash scripts/quickstart.sh", "bash scripts/test.sh"], f"README starts with {head}"
    for command in commands:
        assert (REPO / command.split()[1]).is_file(), f"{command}: script missing"
    ci = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    assert "bash scripts/test.sh" in ci, ".ci/run must run exactly the README's test command"
