"""An ablation study end to end, small: `python -m pipelines.study` in a copy of the project builds the data with DVC,
trains 2 variants x 2 seeds through the flow's tune stage on a local Ray (every trial to its budget), tests each
val-selected checkpoint once, publishes the 4 trials as versions of one name with their variant and seed, and writes
the report. Then `trm tune --resume` on the same Tune run trains nothing and measures the same test numbers, and the
flow resumed on it publishes nothing twice."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline_services import PYTHON, base_env, copy_project

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
SPACE = """
fixed:
  train.max_steps: 60
  train.eval_interval: 20
  train.checkpoint_interval: 20
space:
  train.seed: {grid: [0, 1]}
variants:
  base: {}
  one-step: {model.one_step_gradient: true}
search:
  scheduler: fifo
  workers_per_trial: 1
  cpus_per_worker: 0.9
study:
  name: smoke-study
  baseline: base
  rows:
    base: {paper: 87.4, about: the smoke preset}
    one-step: {paper: 56.5, about: 1-step gradient}
"""


def _run(command: list[str], repo: Path, env: dict[str, str]) -> str:
    done = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, timeout=840)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]
    return output


def test_a_study_publishes_every_trial_and_reports_it(tmp_path: Path, shared_datasets: Path) -> None:
    from trm.store import ModelStore

    repo = copy_project(tmp_path, shared_datasets)
    store_url, space = str(tmp_path / "store"), tmp_path / "tiny-study.yaml"
    space.write_text(SPACE)
    env = base_env(PREFECT_HOME=str(tmp_path / "prefect-home"), TRM_DATASETS=str(tmp_path / "shared" / "datasets"))
    command = ["-m", "pipelines.study", "--preset", "smoke", "--space", str(space), "--store", store_url]
    _run([PYTHON, *command, "--report", "docs/fidelity.md"], repo, env)

    store = ModelStore.open(store_url)
    manifests = [store.manifest("smoke-study", v) for v in store.versions("smoke-study")]
    assert len(manifests) == 4
    studied = {(m.extra["study"]["variant"], m.extra["study"]["seed"]) for m in manifests}
    assert studied == {("base", 0), ("base", 1), ("one-step", 0), ("one-step", 1)}
    (tune_run,) = {m.extra["study"]["tune_run"] for m in manifests}
    for manifest in manifests:
        assert manifest.tune_run_name == tune_run and manifest.tune_trial_name
        assert manifest.selection and manifest.selection["split"] == "val"  # chosen on val, tested once
        assert 0.0 <= manifest.metrics["fixed/exact_accuracy"] <= 1.0
        assert manifest.config["train"]["max_steps"] == 60
        one_step = manifest.extra["study"]["variant"] == "one-step"
        assert manifest.config["model"]["one_step_gradient"] is one_step
        assert manifest.config["train"]["seed"] == manifest.extra["study"]["seed"]

    run_dir = repo / "runs" / "studies" / tune_run
    study = json.loads((run_dir / "study.json").read_text())
    assert sorted(study["models"]) == [f"smoke-study:{v}" for v in range(1, 5)]
    report = (repo / "docs" / "fidelity.md").read_text()
    assert "| **base** |" in report and "| **one-step** |" in report and "87.4" in report
    assert "Is the paper's ordering reproduced?" in report
    assert (repo / "docs" / "img" / "fidelity.png").read_bytes()[:4] == b"\x89PNG"
    logs = {p: p.read_text() for p in (run_dir / "trials").glob("*/metrics.jsonl")}
    assert len(logs) == 4

    resumed = _run(
        [
            str(Path(PYTHON).parent / "trm"),
            "tune",
            "--preset",
            "smoke",
            "--space",
            str(space),
            "--storage",
            str(repo / "runs" / "studies" / "ray"),
            "--name",
            tune_run,
            "--out",
            str(run_dir),
            "--resume",
        ],
        repo,
        env,
    )
    assert {p: p.read_text() for p in (run_dir / "trials").glob("*/metrics.jsonl")} == logs  # nothing trained
    said = {line.split(": val")[0]: line for line in resumed.splitlines() if ": val " in line}
    for manifest in manifests:  # the same checkpoints, tested again: the same numbers
        study_of = manifest.extra["study"]
        line = said[f"{study_of['variant']} seed {study_of['seed']}"]
        assert line.endswith(f"test exact {manifest.metrics['fixed/exact_accuracy']:.3f}"), line

    _run([PYTHON, *command, "--resume", tune_run], repo, env)
    assert store.versions("smoke-study") == [1, 2, 3, 4]  # each trial is published once
    assert {p: p.read_text() for p in (run_dir / "trials").glob("*/metrics.jsonl")} == logs
