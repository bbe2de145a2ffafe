"""The real dvc.yaml/params.yaml in a throw-away copy of the repository: `dvc repro` builds the small CPU stages,
a second repro runs nothing, a param change re-runs only its stage, and push/pull round-trip through a local
folder remote and an S3 remote (a moto server on 127.0.0.1)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
STAGES = ("sudoku-4x4", "maze-small")
SMALL = {  # shrink the CPU stages so each build takes a second; the stage definitions themselves are the real ones
    "sudoku-4x4": {"train_count": 120, "test_count": 30, "num_aug": 4},
    "maze-small": {"train_count": 60, "test_count": 20},
}

pytestmark = pytest.mark.timeout(240)


class DvcRepo:
    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = env

    def run(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "dvc", *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert result.returncode == 0, f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout + result.stderr

    def git(self, *args: str) -> None:
        subprocess.run(["git", *args], cwd=self.root, env=self.env, check=True, capture_output=True, timeout=60)

    def fingerprint(self, stage: str) -> dict[str, tuple[str, int]]:
        """sha256 and mtime (ns) of every file of data/<stage>."""
        folder = self.root / "data" / stage
        return {
            f.name: (hashlib.sha256(f.read_bytes()).hexdigest(), f.stat().st_mtime_ns) for f in sorted(folder.iterdir())
        }

    def hashes(self, stage: str) -> dict[str, str]:
        return {name: digest for name, (digest, _) in self.fingerprint(stage).items()}

    def set_params(self, stage: str, **values: object) -> None:
        params_file = self.root / "params.yaml"
        params = yaml.safe_load(params_file.read_text())
        params[stage].update(values)
        params_file.write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def dvc_repo(tmp_path_factory: pytest.TempPathFactory, shared_datasets: Path) -> DvcRepo:
    """A git + DVC repository holding a copy of our package, dvc.yaml and params.yaml, with the two CPU stages
    already reproduced once. `../shared/datasets` beside it points at the real offline data."""
    work = tmp_path_factory.mktemp("dvc")
    root = work / "repo"
    root.mkdir()
    (work / "shared").mkdir()
    (work / "shared" / "datasets").symlink_to(shared_datasets, target_is_directory=True)
    # __pycache__ is copied on purpose: it carries numba's on-disk compile cache for the generators
    shutil.copytree(REPO / "trm", root / "trm")
    for name in ("dvc.yaml", "params.yaml", ".gitignore"):
        shutil.copy2(REPO / name, root / name)
    (root / "data").mkdir()
    shutil.copy2(REPO / "data" / ".gitignore", root / "data" / ".gitignore")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRM_", "AWS_", "DVC_"))}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        DVC_NO_ANALYTICS="1",
        TRM_DATASETS=str(shared_datasets),
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@t",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@t",
    )
    repo = DvcRepo(root, env)
    repo.git("init", "-q")
    repo.run("init", "-q")
    repo.run("config", "core.analytics", "false")
    for stage, values in SMALL.items():
        repo.set_params(stage, **values)
    repo.run("repro", *STAGES)
    return repo


def test_repro_builds_each_stage_from_its_params(dvc_repo: DvcRepo) -> None:
    import json

    params = yaml.safe_load((dvc_repo.root / "params.yaml").read_text())
    lock = yaml.safe_load((dvc_repo.root / "dvc.lock").read_text())
    for stage in STAGES:
        meta = json.loads((dvc_repo.root / "data" / stage / "metadata.json").read_text())
        assert meta["name"] == stage
        assert {k: meta["params"][k] for k in params[stage]} == params[stage]  # the section reached the builder
        assert meta["splits"]["test"]["examples"] == SMALL[stage]["test_count"]
        assert lock["stages"][stage]["params"]["params.yaml"][stage] == params[stage]
        assert lock["stages"][stage]["outs"][0]["path"] == f"data/{stage}"


def test_second_repro_runs_nothing(dvc_repo: DvcRepo) -> None:
    before = {stage: dvc_repo.fingerprint(stage) for stage in STAGES}
    output = dvc_repo.run("repro", *STAGES)
    for stage in STAGES:
        assert f"Stage '{stage}' didn't change, skipping" in output
        assert dvc_repo.fingerprint(stage) == before[stage]  # not even rewritten
    assert "up to date" in dvc_repo.run("status", *STAGES)


def test_param_change_reruns_only_its_stage(dvc_repo: DvcRepo) -> None:
    sudoku_before = dvc_repo.fingerprint("sudoku-4x4")
    maze_before = dvc_repo.hashes("maze-small")
    dvc_repo.set_params("maze-small", seed=1)
    try:
        output = dvc_repo.run("repro", *STAGES)
        assert "Stage 'sudoku-4x4' didn't change" in output and "Running stage 'maze-small'" in output
        assert dvc_repo.fingerprint("sudoku-4x4") == sudoku_before
        assert dvc_repo.hashes("maze-small")["train.parquet"] != maze_before["train.parquet"]
    finally:
        dvc_repo.set_params("maze-small", seed=0)
    output = dvc_repo.run("repro", *STAGES)  # back to the old params: restored from the cache, not rebuilt
    assert "Running stage 'maze-small'" not in output
    assert dvc_repo.hashes("maze-small") == maze_before


def _round_trip(dvc_repo: DvcRepo, remote: str) -> None:
    """Push, lose the outputs and the local cache, pull, and get identical bytes back."""
    expected = {stage: dvc_repo.hashes(stage) for stage in STAGES}
    dvc_repo.run("push", "-r", remote, *STAGES)
    for stage in STAGES:
        shutil.rmtree(dvc_repo.root / "data" / stage)
    shutil.rmtree(dvc_repo.root / ".dvc" / "cache")
    dvc_repo.run("pull", "-r", remote, *STAGES)
    assert {stage: dvc_repo.hashes(stage) for stage in STAGES} == expected
    assert "up to date" in dvc_repo.run("status", *STAGES)


def test_push_pull_local_folder_remote(dvc_repo: DvcRepo, tmp_path: Path) -> None:
    store = tmp_path / "dvc-store"
    dvc_repo.run("remote", "add", "-f", "folder", str(store))
    _round_trip(dvc_repo, "folder")
    assert any(store.rglob("*"))


def test_push_pull_s3_remote(dvc_repo: DvcRepo, s3_server) -> None:
    bucket = s3_server.new_bucket()  # DVC does not create buckets (NoSuchBucket)
    dvc_repo.run("remote", "add", "-f", "s3", f"s3://{bucket}/dvcstore")
    dvc_repo.run("remote", "modify", "s3", "endpointurl", s3_server.endpoint_url)
    dvc_repo.run("remote", "modify", "--local", "s3", "access_key_id", s3_server.access_key)
    dvc_repo.run("remote", "modify", "--local", "s3", "secret_access_key", s3_server.secret_key)
    _round_trip(dvc_repo, "s3")
    assert s3_server.filesystem().find(f"{bucket}/dvcstore")  # the objects really went to the server
