"""Collect the facts a manifest records: git state, DVC hashes of the data, the software environment.

Every collector degrades gracefully where a fact does not exist (no git binary, not a checkout, no dvc.lock):
the field is left empty instead of failing a publish. A fact that was asked for explicitly but is wrong (a
stage missing from an existing dvc.lock, an unreadable lock) is an error, because silently publishing without
data lineage would defeat the purpose.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from trm.store.manifest import DataLineage, DvcEntry, EnvironmentInfo, GitInfo

KEY_PACKAGES = (
    "trm-pipeline",
    "torch",
    "numpy",
    "numba",
    "pyarrow",
    "safetensors",
    "pydantic",
    "ray",
    "prefect",
    "dvc",
    "fsspec",
    "s3fs",
)


class LineageError(ValueError):
    """A requested lineage fact is present but unusable (e.g. the DVC stage is not in dvc.lock)."""


def _git(repo_dir: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(repo_dir), *args], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def collect_git(repo_dir: Path) -> GitInfo:
    """Commit, branch and dirty flag of the checkout containing ``repo_dir``. Outside a git repo (e.g. the Docker
    image, which ships no .git) the commit comes from $TRM_GIT_COMMIT when set, with dirty unknown."""
    commit = _git(repo_dir, "rev-parse", "HEAD")
    if commit is None:
        return GitInfo(commit=os.environ.get("TRM_GIT_COMMIT") or None)
    status = _git(repo_dir, "status", "--porcelain", "--untracked-files=normal")
    branch = _git(repo_dir, "rev-parse", "--abbrev-ref", "HEAD")
    return GitInfo(commit=commit, dirty=None if status is None else bool(status), branch=branch)


def _entry(raw: dict[str, Any], lock_file: Path, stage: str) -> DvcEntry:
    if not isinstance(raw, dict) or "path" not in raw:
        raise LineageError(f"{lock_file}: stage {stage!r} has a dep/out without a 'path': {raw!r}")
    return DvcEntry(path=str(raw["path"]), md5=raw.get("md5"), size=raw.get("size"), nfiles=raw.get("nfiles"))


def read_dvc_lock(lock_file: Path, stage: str) -> DataLineage:
    """The deps/outs hashes and params DVC recorded for ``stage`` (errors name the file and what is wrong)."""
    lock_file = Path(lock_file)
    try:
        raw = yaml.safe_load(lock_file.read_text())
    except FileNotFoundError as error:
        raise LineageError(f"{lock_file}: no dvc.lock; run `dvc repro {stage}` first") from error
    except yaml.YAMLError as error:
        raise LineageError(f"{lock_file}: not valid YAML: {error}") from error
    stages = raw.get("stages") if isinstance(raw, dict) else None
    if not isinstance(stages, dict):
        raise LineageError(f"{lock_file}: no 'stages' mapping (is this a DVC 2+ lock file?)")
    if stage not in stages:
        raise LineageError(f"{lock_file}: stage {stage!r} not found; stages present: {sorted(stages)}")
    body = stages[stage] or {}
    params = body.get("params") or {}
    return DataLineage(
        stage=stage,
        lock_file=lock_file.name,
        deps=[_entry(d, lock_file, stage) for d in body.get("deps") or []],
        outs=[_entry(o, lock_file, stage) for o in body.get("outs") or []],
        params=params if isinstance(params, dict) else {},
    )


def read_dataset_metadata(dataset_dir: Path) -> dict[str, Any]:
    """The built dataset's ``metadata.json`` as a dict (contract 1); a clear error if missing or broken."""
    path = Path(dataset_dir) / "metadata.json"
    try:
        value = json.loads(path.read_text())
    except FileNotFoundError as error:
        raise LineageError(f"{path}: dataset metadata not found") from error
    except json.JSONDecodeError as error:
        raise LineageError(f"{path}: not valid JSON: {error}") from error
    if not isinstance(value, dict):
        raise LineageError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


def collect_environment(packages: tuple[str, ...] = KEY_PACKAGES) -> EnvironmentInfo:
    """Python, platform and installed versions of the packages that shape results (read from metadata only:
    importing torch or ray just to ask their version would cost seconds)."""
    versions: dict[str, str] = {}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return EnvironmentInfo(python=sys.version.split()[0], platform=platform.platform(terse=True), packages=versions)
