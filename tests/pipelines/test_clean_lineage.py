"""A fresh checkout runs the quickstart (`scripts/quickstart.sh`: DVC build, Ray Train with 2 workers, evaluation,
publish to ./artifacts) without dirtying itself: the published manifest records the checkout's commit as clean and
`git status` is empty after. The same command again finds the latest version made from the same inputs and skips
training ("Up to date"), and `--force` retrains."""

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
SHORT = ["--set", "train.max_steps=100", "--set", "eval.interval=50", "--set", "checkpoint.interval=50"]


def quickstart(repo: Path, *args: str) -> tuple[str, float]:
    env = base_env(TRM_SKIP_INSTALL="1", TRM_DATASETS=str(repo.parent / "shared" / "datasets"))
    started = time.perf_counter()
    done = subprocess.run(
        ["bash", "scripts/quickstart.sh", *args], cwd=repo, env=env, capture_output=True, text=True, timeout=600
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    return output, time.perf_counter() - started


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout


def test_fresh_checkout_quickstart_is_clean_and_a_rerun_is_up_to_date(tmp_path: Path, shared_datasets: Path) -> None:
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

    again, seconds = quickstart(repo, *SHORT)
    assert "Up to date:      smoke:1" in again, again[-3000:]
    assert store.versions("smoke") == [1]
    skipped = json.loads(max((repo / "runs").glob("smoke-*/retrain.json"), key=lambda p: p.stat().st_mtime).read_text())
    assert skipped["up_to_date"] == "smoke:1" and skipped["train"] is None
    assert skipped["fingerprint"] == fingerprint["sha256"]
    print(f"skipped rerun: {seconds:.1f} s wall (quickstart script, Prefect without a server)")

    changed, _ = quickstart(repo, *SHORT, "--set", "train.max_steps=50")  # another config is another model
    assert "#smoke:2" in changed, changed[-3000:]
    forced, _ = quickstart(repo, *SHORT, "--set", "train.max_steps=50", "--force")
    assert "#smoke:3" in forced, forced[-3000:]
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""
