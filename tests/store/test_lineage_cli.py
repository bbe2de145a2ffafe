"""Lineage in the manifest (git, dvc.lock, dataset metadata), version diffs, and the `trm models` commands."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from trm.cli.models import models_app
from trm.store import ModelStore, PublishRequest, diff_manifests
from trm.store.lineage import LineageError, collect_git, read_dvc_lock

from .conftest import make_export

DVC_LOCK = """\
schema: '2.0'
stages:
  sudoku-4x4:
    cmd: python -m trm data build sudoku-4x4 --params params.yaml
    deps:
    - path: trm/data/sources/sudoku.py
      hash: md5
      md5: 0f1e2d3c4b5a69788796a5b4c3d2e1f0
      size: 4321
    params:
      params.yaml:
        sudoku-4x4.seed: 7
    outs:
    - path: data/sudoku-4x4
      hash: md5
      md5: 9a8b7c6d5e4f30211203f4e5d6c7b8a9.dir
      size: 98765
      nfiles: 4
"""


def _fake_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "data" / "sudoku-4x4").mkdir(parents=True)
    (repo / "dvc.lock").write_text(DVC_LOCK)
    (repo / "data" / "sudoku-4x4" / "metadata.json").write_text(
        json.dumps({"name": "sudoku-4x4", "task": "sudoku", "seq_len": 16, "vocab_size": 6})
    )
    return repo


def test_manifest_records_dvc_and_dataset_outside_git(tmp_path: Path, exported: Path) -> None:
    repo = _fake_repo(tmp_path)
    store = ModelStore.open(tmp_path / "store")
    manifest = store.publish(
        PublishRequest(
            name="lineage",
            model_dir=exported,
            repo_dir=repo,
            dvc_stage="sudoku-4x4",
            dataset_dir=repo / "data" / "sudoku-4x4",
        )
    )
    assert manifest.git.commit is None and manifest.git.dirty is None  # not a checkout: recorded as unknown
    assert manifest.data is not None and manifest.data.stage == "sudoku-4x4"
    assert [(o.path, o.md5, o.nfiles) for o in manifest.data.outs] == [
        ("data/sudoku-4x4", "9a8b7c6d5e4f30211203f4e5d6c7b8a9.dir", 4)
    ]
    assert manifest.data.deps[0].md5 == "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
    assert manifest.data.params == {"params.yaml": {"sudoku-4x4.seed": 7}}
    assert manifest.dataset_metadata == {"name": "sudoku-4x4", "task": "sudoku", "seq_len": 16, "vocab_size": 6}
    assert store.manifest("lineage", 1) == manifest
    card = (tmp_path / "store" / "models" / "lineage" / "1" / "README.md").read_text()
    assert "9a8b7c6d5e4f30211203f4e5d6c7b8a9.dir" in card and "not from a git checkout" in card


def test_missing_stage_is_an_error_and_writes_nothing(tmp_path: Path, exported: Path) -> None:
    repo = _fake_repo(tmp_path)
    expected = r"dvc\.lock: stage 'maze-small' not found; stages present: \['sudoku-4x4'\]"
    with pytest.raises(LineageError, match=expected):
        ModelStore.open(tmp_path / "store").publish(
            PublishRequest(name="x", model_dir=exported, repo_dir=repo, dvc_stage="maze-small")
        )
    assert not (tmp_path / "store").exists()
    with pytest.raises(LineageError, match=r"no dvc\.lock"):
        read_dvc_lock(tmp_path / "nowhere" / "dvc.lock", "sudoku-4x4")


def test_git_commit_and_dirty_flag(tmp_path: Path) -> None:
    repo = tmp_path / "g"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@e"]
    subprocess.run([*git, "init", "-q"], check=True)
    (repo / "a.txt").write_text("1")
    subprocess.run([*git, "add", "a.txt"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "c"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    clean = collect_git(repo)
    assert clean.commit == head and clean.dirty is False
    (repo / "a.txt").write_text("2")
    assert collect_git(repo).dirty is True


def test_diff_explains_why_versions_differ(tmp_path: Path) -> None:
    repo = _fake_repo(tmp_path)
    store = ModelStore.open(tmp_path / "store")
    first = store.publish(
        PublishRequest(name="d", model_dir=make_export(tmp_path / "a", seed=0), repo_dir=repo, metrics={"acc": 0.5})
    )
    same = store.publish(
        PublishRequest(name="d", model_dir=make_export(tmp_path / "b", seed=0), repo_dir=repo, metrics={"acc": 0.5})
    )
    other = store.publish(
        PublishRequest(
            name="d",
            model_dir=make_export(tmp_path / "c", seed=1),
            repo_dir=repo,
            metrics={"acc": 0.7},
            ray_run_name="run-b",
        )
    )
    assert diff_manifests(first, same) == {}
    changes = diff_manifests(first, other)
    assert changes["config.train.seed"] == (0, 1)
    assert changes["metrics.acc"] == (0.5, 0.7)
    assert changes["ray_run_name"] == (None, "run-b")
    assert "files.model.safetensors.sha256" in changes


@pytest.mark.cli
def test_cli_commands(tmp_path: Path, exported: Path) -> None:
    runner = CliRunner()
    store = str(tmp_path / "store")

    def run(*args: str, code: int = 0):
        result = runner.invoke(models_app, [*args, "--store", store])
        assert result.exit_code == code, result.output
        return result.output

    (tmp_path / "m.json").write_text(json.dumps({"exact_accuracy": 0.91}))
    assert "published cli-model:1" in run("publish", "cli-model", str(exported), "--metrics", str(tmp_path / "m.json"))
    assert "published cli-model:2" in run("publish", "cli-model", str(exported), "--alias", "staging")
    listing = run("list")
    assert "cli-model" in listing and "latest" in listing and "exact_accuracy=0.91" in listing
    assert json.loads(run("show", "cli-model:1"))["metrics"] == {"exact_accuracy": 0.91}
    assert "cli-model@production -> 1" in run("promote", "cli-model", "1", "production")
    assert json.loads(run("show", "cli-model@production"))["version"] == 1
    assert "5 files verified" in run("download", "cli-model@production", str(tmp_path / "dl"))
    assert (tmp_path / "dl" / "manifest.json").is_file()
    assert "metrics.exact_accuracy" in run("diff", "cli-model:1", "cli-model:2")
    missing = run("show", "ghost", code=1)
    assert "error:" in missing and "no published version" in missing and "Traceback" not in missing
    assert "invalid model name" in run("show", "../x", code=2)  # a usage error
    assert "already exists" in run("publish", "cli-model", str(exported), "--version", "1", code=1)
    assert "destination exists" in run("download", "cli-model", str(tmp_path / "dl"), code=1)


def test_commit_outside_a_checkout_comes_from_the_environment(tmp_path, monkeypatch):
    from trm.store.lineage import collect_git

    monkeypatch.delenv("TRM_GIT_COMMIT", raising=False)
    assert collect_git(tmp_path).commit is None
    monkeypatch.setenv("TRM_GIT_COMMIT", "0123abcd")
    info = collect_git(tmp_path)
    assert info.commit == "0123abcd" and info.dirty is None
