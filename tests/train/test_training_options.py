"""The paper's ablation switches as the trainer sees them: EMA off hands on the live weights, ACT off makes every
row run exactly halt_max_steps supervision steps (docs/reference.md §2.1, §2.7)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_fixtures import tiny_config

from trm.data.loader import PuzzleDataset
from trm.train.export import export_model, load_exported
from trm.train.trainer import Trainer


def _trainer(data: Path, run: Path, *overrides: str) -> Trainer:
    return Trainer(tiny_config(data, run, *overrides), PuzzleDataset.open(data, "train"))


def test_without_ema_the_evaluated_and_exported_weights_are_the_live_ones(tiny_dataset, tmp_path):
    trainer = _trainer(tiny_dataset, tmp_path, "train.ema=false")
    for _ in range(3):
        trainer.step()
    assert trainer.ema is None
    evaluated = trainer.ema_model()
    assert not evaluated.training
    live = dict(trainer.model.named_parameters())
    for name, param in evaluated.named_parameters():
        assert torch.equal(param, live[name]), name
    exported, _ = load_exported(export_model(evaluated, trainer.config, tmp_path / "export"))
    for name, param in exported.named_parameters():
        assert torch.equal(param, live[name]), name
    state, _ = trainer.state_dict()
    assert not any(key.startswith("ema.") for key in state)


def test_with_ema_the_evaluated_weights_are_not_the_live_ones(tiny_dataset, tmp_path):
    trainer = _trainer(tiny_dataset, tmp_path)
    for _ in range(3):
        trainer.step()
    live = dict(trainer.model.named_parameters())
    weight = "inner.L_level.layers.0.mlp.down_proj.weight"
    assert weight in live and not torch.equal(dict(trainer.ema_model().named_parameters())[weight], live[weight])


def test_without_act_every_row_trains_halt_max_steps_steps(tiny_dataset, tmp_path):
    # exploration 0.5 (tiny config) and a q head that wants to halt everywhere: both ignored without ACT
    trainer = _trainer(tiny_dataset, tmp_path, "model.act=false")
    with torch.no_grad():
        trainer.model.inner.q_head.bias.fill_(5.0)
    metrics = [trainer.step() for _ in range(8)]
    counts = [m["count"] for m in metrics]
    assert counts == [0, 0, 0, 8, 0, 0, 0, 8]  # halt_max_steps = 4, global batch 8: all rows halt together
    assert metrics[3]["steps"] == metrics[7]["steps"] == 4.0
    assert metrics[0]["q_halt_loss"] > 0  # the q head is still trained


def test_with_act_rows_halt_early(tiny_dataset, tmp_path):
    trainer = _trainer(tiny_dataset, tmp_path)
    with torch.no_grad():
        trainer.model.inner.q_head.bias.fill_(5.0)
    assert trainer.step()["count"] > 0  # rows without an exploration minimum halt after one step
