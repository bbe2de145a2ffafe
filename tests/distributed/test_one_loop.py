"""One training loop: the same preset and seed give the same metrics.jsonl records, the same evaluation and
checkpoint steps and the same checkpointed state in a local run (`trm train`'s path) and in a Ray Train job with one
worker, and both honour checkpoint_interval independently of eval_interval."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ray_fixtures import smoke_config

from trm.distributed.train_job import run_ray_training
from trm.evaluate.training import local_run_hooks
from trm.train.checkpoint import read_checkpoint
from trm.train.loop import train
from trm.train.metrics_log import read_metrics

TIMING_KEYS = {"time", "steps_per_second", "seconds", "puzzles_per_second"}
OVERRIDES = (
    "train.max_steps=12",
    "train.eval_interval=4",
    "train.checkpoint_interval=6",
    "train.log_interval=2",
    "train.threads=1",
)


def comparable(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in records]


def test_local_and_ray_runs_log_evaluate_and_checkpoint_identically(local_ray, smoke_data_root, tmp_path):
    local_config = smoke_config(smoke_data_root, *OVERRIDES, f"run.output_dir={tmp_path / 'local'}")
    local = train(local_config, hooks=local_run_hooks(local_config), progress=False)
    ray_config = smoke_config(smoke_data_root, *OVERRIDES, f"run.output_dir={tmp_path / 'ray-run'}")
    remote = run_ray_training(ray_config, workers=1, storage=tmp_path / "ray-store", name="smoke", keep_best=5)

    local_log = read_metrics(local.run_dir / "metrics.jsonl")
    ray_log = read_metrics(ray_config.run.path() / "metrics.jsonl")
    assert [r["kind"] for r in local_log if r["kind"] != "train"] == ["info", "eval", "eval", "eval"]
    assert [r["step"] for r in local_log if r["kind"] == "eval"] == [4, 8, 12]
    assert [r["step"] for r in local_log if r["kind"] == "train"] == [2, 4, 6, 8, 10, 12]
    assert all("steps_per_second" in r for r in ray_log if r["kind"] == "train")  # both loops log throughput
    assert comparable(ray_log) == comparable(local_log)

    # checkpoint_interval (6) is honoured in both, independently of eval_interval (4), plus the final step and every
    # evaluation that improved the validation score (the best step must survive to be exported)
    improved, best = set(), -1.0
    for record in (r for r in local_log if r["kind"] == "eval"):
        score = record["exact_accuracy"] + 1e-3 * record["accuracy"]
        if score > best:
            improved.add(record["step"])
            best = score
    expected = sorted({6, 12} | improved)
    assert sorted(int(p.name.split("_")[1]) for p in (local.run_dir / "checkpoints").iterdir()) == expected
    assert sorted(int(Path(c).name.rsplit("_", 1)[1]) for c in remote.checkpoints) == expected
    assert remote.selection is not None and local.selection is not None
    assert remote.selection.model_dump() == local.selection.model_dump() and local.selection.step in improved
    assert remote.metrics["step"] == 12 and remote.metrics["eval_step"] == 12

    got, ray_meta = read_checkpoint(Path(remote.latest_checkpoint))
    want, local_meta = read_checkpoint(local.run_dir / "checkpoints" / "step_12")
    assert ray_meta["sampler"] == local_meta["sampler"] and ray_meta["step"] == local_meta["step"] == 12
    for key in want:
        if not key.startswith("rng.torch"):  # the process-global torch RNG is not part of training
            assert torch.equal(got[key], want[key]), key
