"""The committed dvc.lock is current: every stage of dvc.yaml is locked, and no stage's code, raw inputs, params or
command changed since. A fresh clone then records clean lineage, because `dvc repro` rewrites the lock with the same
bytes; a change to the data code that is not re-locked (`dvc repro STAGE`, then commit dvc.lock) fails here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
# What `dvc status` may report for a locked stage: its output not built here (a clone starts without data/).
ALLOWED = {"changed outs"}


@pytest.mark.timeout(300)
def test_every_stage_is_locked_and_the_lock_is_current(shared_datasets: Path) -> None:
    stages = set(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"])
    locked = set(yaml.safe_load((REPO / "dvc.lock").read_text())["stages"])
    assert stages == locked, f"stages without a lock entry: {sorted(stages - locked)}; stale: {sorted(locked - stages)}"
    done = subprocess.run(
        [sys.executable, "-m", "dvc", "status", "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "DVC_NO_ANALYTICS": "1"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    changed = {
        stage: sorted(kind for item in items if isinstance(item, dict) for kind in item)
        for stage, items in json.loads(done.stdout or "{}").items()
    }
    stale = {stage: kinds for stage, kinds in changed.items() if set(kinds) - ALLOWED}
    assert not stale, f"dvc.lock is out of date (run `dvc repro STAGE` and commit dvc.lock): {stale}"
