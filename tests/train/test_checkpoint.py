"""Resume is bit-exact on CPU (k steps + save + load + k steps == 2k uninterrupted steps), checkpoints and exports
are safetensors + JSON only, and an exported model loads back with the EMA weights."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_fixtures import tiny_config

from trm.data.loader import PuzzleDataset
from trm.train.checkpoint import CheckpointError, latest_checkpoint, load_trainer, read_checkpoint, save_trainer
from trm.train.export import ExportError, export_model, load_exported
from trm.train.trainer import Trainer

K = 5


def _trainer(data: Path, run: Path, *overrides: str) -> Trainer:
    return Trainer(tiny_config(data, run, *overrides), PuzzleDataset.open(data, "train"))


# the curriculum deepens at steps 3 and 6 of 20: the first step after the resume at step 5 is the first at full depth
CURRICULUM = "train.depth_curriculum=[{until: 0.1, H_cycles: 1, L_cycles: 1}, {until: 0.25, H_cycles: 1, L_cycles: 2}]"


@pytest.mark.parametrize(
    "overrides", [(), ("train.grad_accum_steps=2",), (CURRICULUM,)], ids=["plain", "accum2", "depth_curriculum"]
)
def test_resume_is_bit_exact(tiny_dataset, tmp_path, overrides):
    straight = _trainer(tiny_dataset, tmp_path, *overrides)
    straight_metrics = [straight.step() for _ in range(2 * K)]

    first = _trainer(tiny_dataset, tmp_path, *overrides)
    for _ in range(K):
        first.step()
    folder = save_trainer(first, tmp_path / "run" / "checkpoints" / f"step_{K}")
    assert sorted(p.name for p in folder.iterdir()) == ["state.json", "state.safetensors"]
    del first

    resumed = _trainer(tiny_dataset, tmp_path, *overrides)
    meta = load_trainer(resumed, folder)
    assert meta["step"] == K and resumed.step_count == K
    resumed_metrics = [resumed.step() for _ in range(K)]
    assert resumed_metrics == straight_metrics[K:]

    want, want_meta = straight.state_dict()
    got, got_meta = resumed.state_dict()
    assert sorted(got) == sorted(want)
    for key in want:
        assert torch.equal(got[key], want[key]), f"{key} differs after resume"
    assert got_meta["sampler"] == want_meta["sampler"] and got_meta["step"] == 2 * K


def test_checkpoint_json_holds_resolved_config_and_latest_is_found(tiny_dataset, tmp_path):
    trainer = _trainer(tiny_dataset, tmp_path)
    trainer.step()
    run = tmp_path / "run"
    save_trainer(trainer, run / "checkpoints" / "step_1")
    trainer.step()
    save_trainer(trainer, run / "checkpoints" / "step_2")
    (run / "checkpoints" / "step_9").mkdir()  # incomplete folder is ignored
    assert latest_checkpoint(run).name == "step_2"
    meta = json.loads((run / "checkpoints" / "step_2" / "state.json").read_text())
    assert meta["config"]["model"]["seq_len"] == 8 and meta["config"]["model"]["vocab_size"] == 6
    with pytest.raises(CheckpointError, match=r"state\.safetensors"):
        read_checkpoint(run / "checkpoints" / "step_9")


def test_export_holds_ema_weights_and_loads_in_eval_mode(tiny_dataset, tmp_path):
    trainer = _trainer(tiny_dataset, tmp_path)
    for _ in range(3):
        trainer.step()
    ema_model = trainer.ema_model()
    folder = export_model(ema_model, trainer.config, tmp_path / "export")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    model, config = load_exported(folder)
    assert not model.training and config.model.seq_len == 8
    for name, param in model.named_parameters():
        assert torch.equal(param, trainer.ema.shadow[name]), name
        assert not torch.equal(param, dict(trainer.model.named_parameters())[name]) or name.startswith("inner.q_head")
    assert torch.equal(model.inner.puzzle_emb.weights, trainer.model.inner.puzzle_emb.weights)

    # a training checkpoint folder loads as a model too (EMA weights)
    ckpt = save_trainer(trainer, tmp_path / "ckpt")
    from_ckpt, _ = load_exported(ckpt)
    for name, param in from_ckpt.named_parameters():
        assert torch.equal(param, trainer.ema.shadow[name]), name
    with pytest.raises(ExportError, match="neither"):
        load_exported(tmp_path)
