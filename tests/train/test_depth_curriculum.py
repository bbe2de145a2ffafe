"""The recursion-depth curriculum (train.depth_curriculum): each step trains at the depth the schedule names, as a
function of the step alone; evaluation and export keep the full depth; bad schedules fail naming the stage."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_fixtures import tiny_config

from trm.config import ConfigError, DepthStage, load_config
from trm.data.loader import PuzzleDataset
from trm.model import RecursionDepth
from trm.train.curriculum import depth_at_step
from trm.train.loop import train
from trm.train.trainer import Trainer

# tiny config: T=2, n=2, 20 steps; step k uses the stage for (k-1)/20
CURRICULUM = (
    "train.depth_curriculum=[{until: 0.1, H_cycles: 1, L_cycles: 1}, {until: 0.25, H_cycles: 1, L_cycles: 2},"
    " {until: 0.5, H_cycles: 2, L_cycles: 1}]"
)
NET_CALLS = [2] * 2 + [3] * 3 + [4] * 5 + [6] * 10  # T(n+1) for steps 1..20


def test_depth_follows_the_fraction_of_the_budget_done():
    stages = [DepthStage(until=0.3, H_cycles=1, L_cycles=2), DepthStage(until=0.6, H_cycles=2, L_cycles=3)]
    depths = [depth_at_step(stages, step, 10) for step in range(1, 11)]
    assert depths == [RecursionDepth(1, 2)] * 3 + [RecursionDepth(2, 3)] * 3 + [None] * 4
    assert depth_at_step([], 1, 10) is None


def test_curriculum_is_a_plain_override():
    config = load_config("smoke", [CURRICULUM])
    assert [(s.until, s.H_cycles, s.L_cycles) for s in config.train.depth_curriculum] == [
        (0.1, 1, 1),
        (0.25, 1, 2),
        (0.5, 2, 1),
    ]
    assert load_config("smoke").train.depth_curriculum == []


@pytest.mark.parametrize(
    ("stages", "message"),
    [
        ("[{until: 0.5, H_cycles: 1, L_cycles: 1}, {until: 0.5, H_cycles: 1, L_cycles: 2}]", r"stage 1 .*increase"),
        ("[{until: 0.6, H_cycles: 1, L_cycles: 1}, {until: 0.3, H_cycles: 1, L_cycles: 2}]", r"stage 1 .*increase"),
        ("[{until: 1.0, H_cycles: 1, L_cycles: 1}]", r"depth_curriculum\.0\.until"),
        ("[{until: 0, H_cycles: 1, L_cycles: 1}]", r"depth_curriculum\.0\.until"),
        ("[{until: 0.5, H_cycles: 0, L_cycles: 1}]", r"depth_curriculum\.0\.H_cycles"),
        ("[{until: 0.2, H_cycles: 1, L_cycles: 1}, {until: 0.5, H_cycles: 1, L_cycles: 3}]", r"stage 1 .*L_cycles=3"),
        ("[{until: 0.5, H_cycles: 3, L_cycles: 1}]", r"stage 0 has H_cycles=3, above model.H_cycles=2"),
        ("[{until: 0.5, T: 1, L_cycles: 1}]", r"depth_curriculum\.0\.T"),
    ],
)
def test_bad_schedules_name_the_stage(stages: str, message: str):
    with pytest.raises(ConfigError, match=message):
        load_config("smoke", [f"train.depth_curriculum={stages}"])


def test_each_step_trains_at_the_scheduled_depth_and_evaluation_at_full_depth(tiny_dataset, tmp_path):
    trainer = Trainer(tiny_config(tiny_dataset, tmp_path, CURRICULUM), PuzzleDataset.open(tiny_dataset, "train"))
    calls: list[int] = []
    trainer.model.inner.L_level.register_forward_hook(lambda module, args, out: calls.append(1))
    per_step, depths = [], []
    for _ in range(12):
        metrics = trainer.step()
        per_step.append(len(calls))
        depths.append((metrics["H_cycles"], metrics["L_cycles"]))
        calls.clear()
    assert per_step == NET_CALLS[:12]
    assert depths == [(1, 1)] * 2 + [(1, 2)] * 3 + [(2, 1)] * 5 + [(2, 2)] * 2

    trainer.model.train()
    evaluated = trainer.ema_model()
    evaluated.inner.L_level.register_forward_hook(lambda module, args, out: calls.append(1))
    batch = {key: value[:2] for key, value in trainer.carries[0].current_data.items()}
    with torch.inference_mode():
        evaluated(evaluated.initial_carry(batch), batch)
    assert len(calls) == 2 * (2 + 1)


def test_a_run_with_a_curriculum_logs_its_depth_and_exports_the_full_model(tiny_dataset, tmp_path):
    config = tiny_config(tiny_dataset, tmp_path, CURRICULUM, "train.log_interval=1")
    result = train(config, progress=False)
    assert result.steps == 20
    lines = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    logged = [(r["H_cycles"], r["L_cycles"]) for r in lines if r["kind"] == "train"]
    assert logged == [(1, 1)] * 2 + [(1, 2)] * 3 + [(2, 1)] * 5 + [(2, 2)] * 10
    exported = json.loads((result.export_dir / "config.json").read_text())
    assert (exported["model"]["H_cycles"], exported["model"]["L_cycles"]) == (2, 2)
