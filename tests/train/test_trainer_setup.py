"""Trainer set-up rules: dataset sizes fill the model config, conflicts fail clearly, epoch budgets follow
docs/reference.md §2.5."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_fixtures import tiny_config

from trm.data.loader import PuzzleDataset
from trm.train.cadence import interval_steps
from trm.train.trainer import Trainer, resolve_device


def test_model_sizes_come_from_the_dataset_and_cpu_is_fp32(tiny_dataset, tmp_path):
    trainer = Trainer(tiny_config(tiny_dataset, tmp_path), PuzzleDataset.open(tiny_dataset, "train"))
    m = trainer.config.model
    assert (m.seq_len, m.vocab_size, m.num_puzzle_identifiers) == (8, 6, 25)
    assert m.forward_dtype == "float32" and trainer.device == torch.device("cpu")
    assert trainer.model.inner.puzzle_emb.weights.shape == (25, 32)


def test_conflicting_model_size_is_an_error(tiny_dataset, tmp_path):
    with pytest.raises(ValueError, match=r"model\.seq_len=81 but dataset"):
        Trainer(tiny_config(tiny_dataset, tmp_path, "model.seq_len=81"), PuzzleDataset.open(tiny_dataset, "train"))


def test_epoch_budget_and_intervals(tiny_dataset, tmp_path):
    # 12 groups x 2 examples per puzzle / batch 8 = 3 steps per epoch
    trainer = Trainer(
        tiny_config(tiny_dataset, tmp_path, "train.max_steps=null", "train.epochs=10"),
        PuzzleDataset.open(tiny_dataset, "train"),
    )
    assert trainer.steps_per_epoch == pytest.approx(3.0) and trainer.total_steps == 30
    assert interval_steps(2, "epochs", trainer.steps_per_epoch) == 6
    assert interval_steps(7, "steps", trainer.steps_per_epoch) == 7 and interval_steps(None, "steps", 3.0) is None


def test_learning_rates_follow_schedule(tiny_dataset, tmp_path):
    trainer = Trainer(
        tiny_config(tiny_dataset, tmp_path, "train.lr=0.01", "train.puzzle_emb_lr=0.1", "train.lr_min_ratio=1.0"),
        PuzzleDataset.open(tiny_dataset, "train"),
    )
    assert trainer.learning_rates(1) == pytest.approx((0.005, 0.05))  # warm-up of 2 steps
    assert trainer.learning_rates(5) == pytest.approx((0.01, 0.1))


def test_cuda_request_without_gpu_fails_clearly():
    if torch.cuda.is_available():
        assert resolve_device("cuda").type == "cuda"
    else:
        with pytest.raises(RuntimeError, match="no CUDA device"):
            resolve_device("cuda")
    assert resolve_device("cpu").type == "cpu"
