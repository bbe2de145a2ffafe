"""2 real processes (gloo) x batch b/2 give the same parameters, EMA, optimizer moments, puzzle table and carry as
1 process x batch b (fp32 tolerance), and 1 process with 2 accumulation micro-batches does too."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_fixtures import tiny_config

from trm.data.loader import PuzzleDataset
from trm.train.trainer import Trainer

STEPS = 6
WORKER = Path(__file__).resolve().parent / "dist_worker.py"
REPO = Path(__file__).resolve().parents[2]


def _single_process_state(data: Path, run: Path, *overrides: str) -> dict[str, torch.Tensor]:
    trainer = Trainer(tiny_config(data, run, *overrides), PuzzleDataset.open(data, "train"))
    losses = [trainer.step()["lm_loss"] for _ in range(STEPS)]
    tensors, _ = trainer.state_dict()
    tensors["metrics.lm_loss"] = torch.tensor(losses, dtype=torch.float64)
    return tensors


def _assert_same_state(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    compared = [k for k in want if not k.startswith("rng.torch")]
    assert set(compared) <= set(got), sorted(set(compared) - set(got))
    assert any(k.startswith("model.inner.puzzle_emb.weights") for k in compared)
    assert any(k.startswith("carry.") for k in compared)
    for key in compared:
        a, b = got[key], want[key]
        assert a.shape == b.shape and a.dtype == b.dtype, key
        if a.dtype.is_floating_point:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=lambda m, k=key: f"{k}: {m}")
        else:
            assert torch.equal(a, b), key


def test_two_gloo_ranks_match_one_process(tiny_dataset, tmp_path):
    want = _single_process_state(tiny_dataset, tmp_path / "single")
    table = want["model.inner.puzzle_emb.weights"]
    assert (table.abs().sum(-1) > 0).sum() > 4, "the puzzle table should have been trained on several rows"

    init_file = tmp_path / "pg_init"
    out_file = tmp_path / "rank0.safetensors"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(rank), "2", str(init_file), str(tiny_dataset), str(out_file), str(STEPS)],
            env=env,
            cwd=REPO,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in range(2)
    ]
    errors = []
    for proc in procs:
        try:
            _, err = proc.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        if proc.returncode != 0:
            errors.append(err[-3000:])
    assert not errors, "\n".join(errors)
    got = load_file(str(out_file))
    _assert_same_state(got, want)


def test_exchange_step_sums_and_gathers_exactly_on_both_paths(tmp_path):
    """One collective (fused all_gather) and the large-model path (all_reduce + all_gather) give the same, exact
    result on every rank: dense sums, ids beyond float32's integer range, float64 metric sums bit for bit."""
    from grad_sync_worker import rank_inputs

    worker = Path(__file__).resolve().parent / "grad_sync_worker.py"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    outs = [tmp_path / f"rank{rank}.safetensors" for rank in range(2)]
    procs = [
        subprocess.Popen(
            [sys.executable, str(worker), str(rank), str(tmp_path / "pg"), str(outs[rank])],
            env=env,
            cwd=REPO,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in range(2)
    ]
    errors = [proc.communicate(timeout=120)[1][-3000:] for proc in procs if proc.wait(timeout=120) != 0]
    assert not errors, "\n".join(errors)
    inputs = [rank_inputs(rank) for rank in range(2)]
    want = {
        "weight_grad": inputs[0][0][0].grad + inputs[1][0][0].grad,
        "bias_grad": torch.zeros(4),
        "ids": torch.cat([inputs[0][1], inputs[1][1]]),
        "grads": torch.cat([inputs[0][2], inputs[1][2]]),
        "metrics": inputs[0][3] + inputs[1][3],
    }
    assert want["metrics"][0].item() != float(torch.tensor(want["metrics"][0].item(), dtype=torch.float32))
    for out in outs:
        got = load_file(str(out))
        for path in ("fused", "all_reduce"):
            for key, value in want.items():
                assert torch.equal(got[f"{path}.{key}"], value), f"{out.name} {path}.{key}: {got[f'{path}.{key}']}"


def test_gradient_accumulation_matches_full_batch(tiny_dataset, tmp_path):
    want = _single_process_state(tiny_dataset, tmp_path / "full")
    got = _single_process_state(tiny_dataset, tmp_path / "accum", "train.grad_accum_steps=2")
    _assert_same_state(got, want)


def test_batch_must_split_evenly(tiny_dataset, tmp_path):
    with pytest.raises(ValueError, match="divisible"):
        Trainer(
            tiny_config(tiny_dataset, tmp_path, "train.grad_accum_steps=3"), PuzzleDataset.open(tiny_dataset, "train")
        )
