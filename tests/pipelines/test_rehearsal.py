"""A dress rehearsal of ARC through the whole retrain flow, reduced to fit CI: a handful of real ARC-AGI-1 tasks
with few augmentations (a real DVC build of the arc-agi-1 stage with its params narrowed), a small model on 2 Ray
workers, bounded evaluation with voting over variants, pass@K, a submission.json checked against the evaluation
format, and a publish flagged as a rehearsal with stage costs and a GPU projection."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline_services import PYTHON, PrefectServer, base_env, copy_project

pytestmark = pytest.mark.timeout(400)
TRAIN_TASKS = ["007bbfb7", "00d62c1b", "017c7c7b", "025d127b"]
TEST_TASKS = ["00576224", "009d5c81"]
SMALL_MODEL = [
    "model.hidden_size=32",
    "model.num_heads=2",
    "model.expansion=2.0",
    "model.puzzle_emb_ndim=32",
    "model.H_cycles=2",
    "model.L_cycles=2",
    "model.halt_max_steps=4",
]


def narrow_arc_stage(repo: Path, shared_datasets: Path, tasks_dir: Path) -> None:
    """params.yaml of the copy: the arc-agi-1 stage reads a few real task files (per-task JSON) with 3 variants."""
    for subset, names, source in (
        ("training", TRAIN_TASKS, "training"),
        ("evaluation", TEST_TASKS, "evaluation"),
    ):
        (tasks_dir / subset).mkdir(parents=True)
        for name in names:
            shutil.copy2(shared_datasets / "arc-agi-1" / "data" / source / f"{name}.json", tasks_dir / subset)
    params_file = repo / "params.yaml"
    params = yaml.safe_load(params_file.read_text())
    params["arc-agi-1"].update(
        source="json",
        subsets=["training", "evaluation"],
        test_set="evaluation",
        val_tasks=1,
        num_aug=3,
        json_folders={"training": str(tasks_dir / "training"), "evaluation": str(tasks_dir / "evaluation")},
    )
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))


def test_arc_rehearsal_through_the_flow(prefect_server: PrefectServer, tmp_path: Path, shared_datasets: Path) -> None:
    from trm.evaluate.arc import check_submission, load_test_puzzles

    repo = copy_project(tmp_path / "machine", shared_datasets)
    narrow_arc_stage(repo, shared_datasets, tmp_path / "tasks")
    store = tmp_path / "store"
    command = [PYTHON, "-m", "pipelines.retrain", "--preset", "arc-agi-1", "--rehearse", "--workers", "2"]
    command += [f"--set={override}" for override in SMALL_MODEL]
    command += ["--repo-dir", str(repo), "--store", str(store)]
    ray_tmp = tempfile.mkdtemp(prefix="trm-t-", dir="/tmp")  # Ray's socket paths must stay under 107 bytes
    env = base_env(PREFECT_API_URL=prefect_server.api_url, TRM_RAY_TMPDIR=ray_tmp)
    started = time.monotonic()
    try:
        done = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, timeout=360)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    seconds = time.monotonic() - started
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert seconds < 180, f"the ARC rehearsal took {seconds:.0f} s (budget 180 s)"

    run_dir = Path(next(line.split()[-1] for line in output.splitlines() if line.startswith("Report:"))).parent
    report = json.loads((run_dir / "rehearsal.json").read_text())
    assert set(report["stages"]) == {"preflight", "data", "train", "evaluate", "publish"}
    assert all(stage["seconds"] > 0 and stage["peak_memory_gb"] > 0 for stage in report["stages"].values())
    assert "train.max_steps=3" in report["overrides"] and "train.global_batch_size=4" in report["overrides"]
    assert report["full_run"]["steps"] > 0 and report["projection"]["hours"]["1xH100"][0] > 0

    # evaluation on the test split: both held-out tasks, several variants each, voted; a valid submission
    eval_report = json.loads((run_dir / "eval" / "eval.json").read_text())
    assert eval_report["bounded"]["groups"] == 2 and eval_report["bounded"]["puzzles"] >= 4
    assert eval_report["arc"]["num_tasks"] == 2 and eval_report["arc"]["num_votes"] >= 4
    assert {"pass@1", "pass@2"} <= set(eval_report["arc"])
    data_dir = repo / "data" / "arc-agi-1"
    check_submission(run_dir / "eval" / "submission.json", load_test_puzzles(data_dir / "test_puzzles.json"))
    # validation during training voted too (its own held-out task)
    val_reports = list((run_dir).rglob("step_3/eval.json"))
    assert val_reports and json.loads(val_reports[0].read_text())["split"] == "val"

    # the publish is flagged: manifest and card say it is a rehearsal; no alias but latest moved
    manifest_file = next(store.rglob("manifest.json"))
    manifest = json.loads(manifest_file.read_text())
    assert manifest["name"] == "arc-agi-1-rehearsal"
    assert manifest["extra"]["rehearsal"]["projection"]["total_eflop"] > 0
    card = (manifest_file.parent / "README.md").read_text()
    assert "Dress rehearsal, not a trained model" in card
