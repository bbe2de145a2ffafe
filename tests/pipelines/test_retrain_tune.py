"""The retrain flow's search path end to end: `python -m pipelines.retrain --tune` in a copy of the project builds the
data with DVC, runs a small search space on a local Ray (2 short trials: the smoke space's 4 trials and ASHA are
tested on their own in tests/distributed/test_tune.py), exports the best trial's selected checkpoint, evaluates it
on the test split and publishes it with the search's lineage."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline_services import PYTHON, base_env, copy_project

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
SPACE = """
fixed:
  train.max_steps: 100
  train.eval_interval: 50
  train.checkpoint_interval: 50
space:
  train.lr: {grid: [3.0e-3, 1.0e-4]}
search:
  workers_per_trial: 1
  cpus_per_worker: 0.9
"""


def test_retrain_with_tune_publishes_the_best_trial(tmp_path: Path, shared_datasets: Path) -> None:
    from trm.config import load_config
    from trm.distributed.space import load_space
    from trm.store import ModelStore

    repo = copy_project(tmp_path, shared_datasets)
    store_url, space = str(tmp_path / "store"), tmp_path / "two-trials.yaml"
    space.write_text(SPACE)
    env = base_env(PREFECT_HOME=str(tmp_path / "prefect-home"), TRM_DATASETS=str(tmp_path / "shared" / "datasets"))
    command = ["-m", "pipelines.retrain", "--preset", "smoke", "--tune", "--tune-space", str(space)]
    done = subprocess.run(
        [PYTHON, *command, "--store", store_url, "--name", "smoke-tuned"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=840,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]
    assert "Published model: " in output and "#smoke-tuned:1" in output, output[-3000:]

    manifest = ModelStore.open(store_url).manifest("smoke-tuned", 1)
    assert manifest.tune_run_name and manifest.tune_trial_name and manifest.extra["tune"] is True
    assert manifest.extra["fingerprint"]["inputs"]["kind"]["tune"] == {"space": str(space), "trials": None}
    config = manifest.config
    assert config["train"]["max_steps"] == 100  # the space's fixed settings were trained
    assert config["train"]["lr"] in load_space(space).space["train.lr"]["grid"]  # ... and one point of its grid
    assert manifest.selection and manifest.selection["split"] == "val"
    assert 0.0 <= manifest.metrics["fixed/exact_accuracy"] <= 1.0 and manifest.metrics["fixed/count"] > 0
    assert load_config("smoke", []).train.lr == 3.0e-3  # the preset itself is untouched by the search
