"""Reproducible retrains from a fresh checkout, through the real commands (no Prefect server: each command runs its
flow in-process, with local Ray and the local store):

- the quickstart (`scripts/quickstart.sh`: DVC build, Ray Train with 2 workers, evaluation, publish to ./artifacts)
  leaves the checkout clean, and the manifest records the checkout's commit as clean;
- the same command again finds the latest version made from the same inputs and trains nothing ("Up to date";
  the deployment test checks the same through a schedule, and force);
- `trm models reproduce smoke:1` retrains from the manifest and publishes bit-identical weights as smoke:2;
- after a new commit it refuses, and `--at-commit` reproduces in a git worktree at the recorded commit."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline_services import REPO, base_env, copy_project

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
SHORT = ["--set", "train.max_steps=100", "--set", "train.eval_interval=50"]


def quickstart(repo: Path, *args: str) -> tuple[str, float]:
    env = base_env(TRM_SKIP_INSTALL="1", TRM_DATASETS=str(repo.parent / "shared" / "datasets"))
    started = time.perf_counter()
    done = subprocess.run(
        ["bash", "scripts/quickstart.sh", *args], cwd=repo, env=env, capture_output=True, text=True, timeout=600
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    return output, time.perf_counter() - started


def trm_command(repo: Path, *args: str, expect: int = 0) -> str:
    env = base_env(
        PREFECT_HOME=str(repo / "runs" / "prefect-home"), TRM_DATASETS=str(repo.parent / "shared" / "datasets")
    )
    done = subprocess.run(
        [str(repo / ".venv" / "bin" / "python"), "-m", "trm.cli", *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = done.stdout + done.stderr
    assert done.returncode == expect, f"exit {done.returncode}, expected {expect}:\n{output[-4000:]}"
    return output


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout


def test_fresh_checkout_runs_clean_skips_unchanged_and_reproduces_bit_identically(
    tmp_path: Path, shared_datasets: Path
) -> None:
    from trm.store import ModelStore

    repo = copy_project(tmp_path, shared_datasets)
    (repo / ".venv").symlink_to(REPO / ".venv", target_is_directory=True)  # the installed environment
    head, lock = git(repo, "rev-parse", "HEAD").strip(), (repo / "dvc.lock").read_bytes()

    first, _ = quickstart(repo, *SHORT)
    assert "Published model: " in first and "#smoke:1" in first, first[-3000:]
    store = ModelStore.open(str(repo / "artifacts"))
    manifest = store.manifest("smoke", 1)
    assert (manifest.git.commit, manifest.git.dirty) == (head, False), manifest.git
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""  # runs/, data/, artifacts/ ignored
    assert (repo / "dvc.lock").read_bytes() == lock  # the build rewrote the lock with the committed bytes
    fingerprint = manifest.extra["fingerprint"]
    assert fingerprint["inputs"]["code_commit"] == head and fingerprint["inputs"]["workers"] == 2
    # the evaluate stage measured the preset's inference strategies; the card sets them against compute
    assert manifest.metrics["strategy/vote:votes=4/forward_passes"] == 4 * 2, manifest.metrics
    card = (repo / "artifacts" / "models" / "smoke" / "1" / "README.md").read_text()
    assert "## Accuracy against compute" in card and "trajectories:trajectories=4" in card, card

    again, seconds = quickstart(repo, *SHORT)
    assert "Up to date:      smoke:1" in again, again[-3000:]
    assert store.versions("smoke") == [1]
    skipped = json.loads(max((repo / "runs").glob("smoke-*/retrain.json"), key=lambda p: p.stat().st_mtime).read_text())
    assert skipped["up_to_date"] == "smoke:1" and skipped["train"] is None
    assert skipped["fingerprint"] == fingerprint["sha256"]
    print(f"skipped rerun: {seconds:.1f} s wall (quickstart script, Prefect without a server)")

    reproduced = trm_command(repo, "models", "reproduce", "smoke:1")
    assert "bit-identical weights" in reproduced, reproduced[-3000:]
    copy = store.manifest("smoke", 2)
    assert copy.extra["reproduces"] == "smoke:1" and copy.extra["reproduction"]["weights_identical"] is True
    assert copy.files["model.safetensors"] == manifest.files["model.safetensors"] and copy.metrics == manifest.metrics
    assert copy.git.commit == head
    # same inputs, so the same fingerprint: the next scheduled run after a reproduction still skips
    assert copy.extra["fingerprint"]["sha256"] == fingerprint["sha256"]

    (repo / "NOTES.md").write_text("a later commit\n")
    git(repo, "add", "NOTES.md")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "later")
    refused = trm_command(repo, "models", "reproduce", "smoke:1", expect=2)
    assert f"was trained at commit {head[:12]}" in refused and "--at-commit" in refused, refused[-2000:]
    assert store.versions("smoke") == [1, 2]

    at_commit = trm_command(repo, "models", "reproduce", "smoke:1", "--at-commit")
    assert "bit-identical weights" in at_commit and "git worktree" in at_commit, at_commit[-3000:]
    third = store.manifest("smoke", 3)
    assert third.git.commit == head and third.git.dirty is False and third.extra["reproduces"] == "smoke:1"
    assert third.files["model.safetensors"] == manifest.files["model.safetensors"]
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""  # the worktree lives in runs/
