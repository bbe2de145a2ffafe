"""An ablation study end to end, small: `python -m pipelines.study` in a copy of the project builds the data with DVC
and trains 2 variants x 2 seeds through the flow's tune stage on a local Ray (every trial to its budget). It is
killed (SIGKILL, the whole process group) once a trial has registered its first checkpoint, and resumed with
`--resume <tune run>`: the interrupted trial continues from that checkpoint, each val-selected checkpoint is tested
once, the 4 trials are published as versions of one name with their variant and seed, and the report is written.
Then `trm tune --resume` on the same Tune run trains nothing and measures the same test numbers, and the flow
resumed once more publishes nothing twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline_services import PYTHON, base_env, copy_project

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
SPACE = """
fixed:
  train.max_steps: 80
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


def _kill_at_first_checkpoint(command: list[str], repo: Path, env: dict[str, str], log: Path) -> tuple[str, str, int]:
    """Start the study and SIGKILL its process group (flow, Ray, Prefect) as soon as a trial's first checkpoint is
    registered (Ray Train's snapshot names it): (the Tune run, that trial, the checkpoint's step)."""
    with log.open("w") as output:
        study = subprocess.Popen(
            command, cwd=repo, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 600
        try:
            while time.monotonic() < deadline and study.poll() is None:
                for snapshot in (repo / "runs" / "studies" / "ray").glob("*/trials/*/checkpoint_manager_snapshot.json"):
                    try:
                        latest = json.loads(snapshot.read_text()).get("latest_checkpoint_result")
                    except (json.JSONDecodeError, FileNotFoundError):  # being replaced right now
                        continue
                    if latest:
                        os.killpg(study.pid, signal.SIGKILL)
                        return snapshot.parents[2].name, snapshot.parent.name, int(latest["metrics"]["step"])
                time.sleep(0.1)
        finally:
            if study.poll() is None:
                os.killpg(study.pid, signal.SIGKILL)
            study.wait()
    raise AssertionError(f"no trial checkpointed before the study ended:\n{log.read_text()[-5000:]}")


def test_a_study_publishes_every_trial_and_reports_it(tmp_path: Path, shared_datasets: Path) -> None:
    from trm.store import ModelStore

    repo = copy_project(tmp_path, shared_datasets)
    store_url, space = str(tmp_path / "store"), tmp_path / "tiny-study.yaml"
    space.write_text(SPACE)
    env = base_env(PREFECT_HOME=str(tmp_path / "prefect-home"), TRM_DATASETS=str(tmp_path / "shared" / "datasets"))
    command = ["-m", "pipelines.study", "--preset", "smoke", "--space", str(space), "--store", store_url]
    tune_run, interrupted, checkpointed = _kill_at_first_checkpoint(
        [PYTHON, *command, "--report", "docs/fidelity.md"], repo, env, tmp_path / "killed.log"
    )
    _run([PYTHON, *command, "--report", "docs/fidelity.md", "--resume", tune_run], repo, env)
    run_dir = repo / "runs" / "studies" / tune_run
    records = [
        json.loads(line) for line in (run_dir / "trials" / interrupted / "metrics.jsonl").read_text().splitlines()
    ]
    resumed_at = [r["step"] for r in records if r["kind"] == "resume"]
    assert len(resumed_at) == 1 and checkpointed <= resumed_at[0] < 80, (checkpointed, resumed_at)
    trained = [r["step"] for r in records if r["kind"] == "train"]
    assert trained == sorted(set(trained)) and trained[-1] == 80  # continued, nothing logged twice

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
        assert manifest.config["train"]["max_steps"] == 80
        one_step = manifest.extra["study"]["variant"] == "one-step"
        assert manifest.config["model"]["one_step_gradient"] is one_step
        assert manifest.config["train"]["seed"] == manifest.extra["study"]["seed"]

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
