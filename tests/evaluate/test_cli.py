"""`trm evaluate` end to end on exported models: eval.json for both modes, ARC pass@K and submission.json."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from trm.cli import app
from trm.config import DataConfig, TrainConfig, TRMConfig
from trm.model import TRM, ModelConfig
from trm.train.export import export_model

pytestmark = pytest.mark.cli


def _export(folder, dataset_dir, seq_len: int, vocab: int, num_ids: int) -> None:
    torch.manual_seed(0)
    model_config = ModelConfig(
        seq_len=seq_len,
        vocab_size=vocab,
        num_puzzle_identifiers=num_ids,
        hidden_size=16,
        num_heads=1,
        expansion=2.0,
        L_layers=1,
        H_cycles=1,
        L_cycles=1,
        puzzle_emb_ndim=16,
        puzzle_emb_len=1,
        halt_max_steps=3,
    )
    config = TRMConfig(model=model_config, data=DataConfig(name=str(dataset_dir)), train=TrainConfig(max_steps=1))
    export_model(TRM(model_config), config, folder)


def test_evaluate_arc_writes_eval_json_and_submission(arc_kit, tmp_path) -> None:
    a = np.array([[1, 2], [3, 4]])
    b = np.array([[5, 5, 0]])
    tasks = {
        "t1": {"train": [], "test": [{"input": a.tolist(), "output": b.tolist()}]},
        "t2": {
            "train": [],
            "test": [{"input": b.tolist(), "output": a.tolist()}, {"input": a.tolist(), "output": a.tolist()}],
        },
    }
    dataset_dir, records = arc_kit.write_arc_dataset(tmp_path / "arc-mini", tasks, variants_per_task=2)
    meta = json.loads((dataset_dir / "metadata.json").read_text())
    _export(tmp_path / "model", dataset_dir, 900, 12, meta["num_puzzle_identifiers"])

    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            str(tmp_path / "model"),
            "--mode",
            "both",
            "--batch-size",
            "4",
            "--out",
            str(out),
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads((out / "eval.json").read_text())
    assert set(report["modes"]) == {"fixed", "adaptive"}
    fixed = report["modes"]["fixed"]
    assert fixed["count"] == len(records) and fixed["steps"] == 3 and len(fixed["per_step"]) == 3
    assert report["modes"]["adaptive"]["steps"] <= 3
    assert report["arc"]["num_votes"] == len(records) and report["arc"]["num_tasks"] == 2
    assert {f"pass@{k}" for k in (1, 2, 5, 10, 100, 1000)} <= set(report["arc"])
    submission = json.loads((out / "submission.json").read_text())
    assert sorted(submission) == ["t1", "t2"] and len(submission["t2"]) == 2
    assert set(submission["t1"][0]) == {"attempt_1", "attempt_2"}
    assert "ARC" in result.output and "exact acc" in result.output


def test_evaluate_reports_a_bad_checkpoint_clearly(tmp_path) -> None:
    result = CliRunner().invoke(app, ["evaluate", str(tmp_path / "nothing-here"), "--data", str(tmp_path)])
    assert result.exit_code != 0
    assert "nothing-here" in result.output


def test_pool_votes_accumulates_across_checkpoints_only_when_asked(arc_kit, tmp_path) -> None:
    a = np.array([[1, 2], [3, 4]])
    tasks = {"t1": {"train": [], "test": [{"input": a.tolist(), "output": a.T.tolist()}]}}
    dataset_dir, records = arc_kit.write_arc_dataset(tmp_path / "arc-mini", tasks, variants_per_task=2)
    meta = json.loads((dataset_dir / "metadata.json").read_text())
    for name in ("ckpt-a", "ckpt-b"):
        _export(tmp_path / name, dataset_dir, 900, 12, meta["num_puzzle_identifiers"])
    for pool, second_votes in ((False, len(records)), (True, 2 * len(records))):
        out = tmp_path / f"out-{pool}"
        args = ["evaluate", str(tmp_path / "ckpt-a"), str(tmp_path / "ckpt-b"), "--batch-size", "2", "--out", str(out)]
        result = CliRunner().invoke(app, args + (["--pool-votes"] if pool else []))
        assert result.exit_code == 0, result.output
        first = json.loads((out / "ckpt-a" / "eval.json").read_text())
        second = json.loads((out / "ckpt-b" / "eval.json").read_text())
        assert first["arc"]["num_votes"] == len(records)
        assert second["arc"]["num_votes"] == second_votes
        assert second["pooled_votes"] is pool


def test_evaluate_accepts_a_training_checkpoint_folder(tmp_path) -> None:
    """A checkpoint written by the trainer (EMA weights inside) evaluates like an export, dataset from its config."""
    from trm.data.loader import PuzzleDataset
    from trm.data.writer import DatasetWriter, ExampleBatch
    from trm.train.checkpoint import save_trainer
    from trm.train.trainer import Trainer

    rng = np.random.default_rng(0)
    n, seq_len, vocab = 8, 6, 5
    rows = ExampleBatch(
        inputs=rng.integers(1, vocab, (n, seq_len)).astype(np.uint8),
        labels=rng.integers(1, vocab, (n, seq_len)).astype(np.uint8),
        puzzle_identifier=np.ones(n, dtype=np.int32),
        puzzle_index=np.arange(n, dtype=np.int32),
        group_index=np.arange(n, dtype=np.int32),
        source_names=["gen"],
        source_codes=np.zeros(n, dtype=np.int32),
    )
    data_dir = tmp_path / "tiny"
    with DatasetWriter(data_dir, seq_len=seq_len) as writer:
        writer.identifiers.append("only")
        writer.split("train").write(rows)
        writer.split("test").write(rows)
        writer.commit(
            {
                "name": "tiny",
                "task": "sudoku",
                "builder_version": "test",
                "params": {},
                "seq_len": seq_len,
                "vocab_size": vocab,
                "vocab": [str(i) for i in range(vocab)],
                "grid_shape": (2, 3),
                "sources": [],
            }
        )
    model_config = ModelConfig(
        hidden_size=16,
        num_heads=1,
        expansion=2.0,
        L_layers=1,
        H_cycles=1,
        L_cycles=1,
        puzzle_emb_ndim=16,
        puzzle_emb_len=1,
        halt_max_steps=2,
    )
    config = TRMConfig(
        model=model_config,
        data=DataConfig(name=str(data_dir)),
        train=TrainConfig(max_steps=1, global_batch_size=4, lr_warmup_steps=0, device="cpu"),
    )
    trainer = Trainer(config, PuzzleDataset.open(data_dir, "train"))
    trainer.step()
    checkpoint = save_trainer(trainer, tmp_path / "run" / "step_1")

    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["evaluate", str(checkpoint), "--batch-size", "4", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "eval.json").read_text())
    assert report["dataset"] == str(data_dir)
    assert report["modes"]["fixed"]["count"] == n and report["modes"]["fixed"]["steps"] == 2
    assert "arc" not in report and not (out / "submission.json").exists()


def _write_sudoku_4x4(folder, n: int = 6) -> None:
    """A tiny 4x4 Sudoku-shaped dataset (tokens 1 blank, 2..5 digits) with test and val splits."""
    from trm.data.writer import DatasetWriter, ExampleBatch

    rng = np.random.default_rng(0)
    rows = ExampleBatch(
        inputs=rng.integers(1, 6, (n, 16)).astype(np.uint8),
        labels=rng.integers(2, 6, (n, 16)).astype(np.uint8),
        puzzle_identifier=np.ones(n, dtype=np.int32),
        puzzle_index=np.arange(n, dtype=np.int32),
        group_index=np.arange(n, dtype=np.int32),
        source_names=["gen"],
        source_codes=np.zeros(n, dtype=np.int32),
    )
    with DatasetWriter(folder, seq_len=16) as writer:
        writer.identifiers.append("only")
        for split in ("train", "val", "test"):
            writer.split(split).write(rows)
        writer.commit(
            {
                "name": "sudoku-4x4",
                "task": "sudoku",
                "builder_version": "test",
                "params": {},
                "seq_len": 16,
                "vocab_size": 6,
                "vocab": ["<pad>", "<blank>", "1", "2", "3", "4"],
                "grid_shape": (4, 4),
                "sources": [],
            }
        )


def test_evaluate_measures_each_strategy_into_eval_json(tmp_path) -> None:
    dataset_dir = tmp_path / "sudoku-4x4"
    _write_sudoku_4x4(dataset_dir)
    _export(tmp_path / "model", dataset_dir, 16, 6, 2)
    out = tmp_path / "out"
    specs = ["fixed:steps=5", "trajectories:trajectories=2", "vote:votes=3", "adaptive:calibrate"]
    args = ["evaluate", str(tmp_path / "model"), "--batch-size", "4", "--out", str(out), "--device", "cpu"]
    result = CliRunner().invoke(app, args + [item for spec in specs for item in ("--strategy", spec)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "eval.json").read_text())
    assert set(report["modes"]) == {"fixed"}  # the official pass is still there
    strategies = report["strategies"]
    assert list(strategies)[:3] == ["fixed:steps=5", "trajectories:trajectories=2", "vote:votes=3"]
    assert strategies["fixed:steps=5"]["forward_passes"] == 5 and strategies["fixed:steps=5"]["count"] == 6
    assert strategies["trajectories:trajectories=2"]["forward_passes"] == 2 * 3  # K runs x halt_max_steps
    assert strategies["vote:votes=3"]["forward_passes"] == 3 * 3
    calibrated = list(strategies)[3]  # keyed by what was asked for; the summary names the threshold chosen
    assert calibrated == "adaptive:calibrate=true" and strategies[calibrated]["strategy"].startswith("adaptive:halt")
    assert strategies[calibrated]["calibration"]["table"][-1]["threshold"] == "inf"
    assert strategies[calibrated]["forward_passes"] <= 3
    printed = " ".join(result.output.split())  # the same words at any terminal width
    assert "inference strategies" in printed and "threshold calibrated on val" in printed


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("fixed:votes=2", "does not apply to fixed"),
        ("trajectories:calibrate", "key 'calibrate' does not apply to trajectories"),
        ("vote", "ARC votes over the dataset's own augmented variants"),
    ],
)
def test_evaluate_refuses_a_bad_strategy_before_evaluating(arc_kit, tmp_path, spec: str, message: str) -> None:
    a = np.array([[1, 2], [3, 4]])
    tasks = {"t1": {"train": [], "test": [{"input": a.tolist(), "output": a.tolist()}]}}
    dataset_dir, _ = arc_kit.write_arc_dataset(tmp_path / "arc-mini", tasks, variants_per_task=1)
    meta = json.loads((dataset_dir / "metadata.json").read_text())
    _export(tmp_path / "model", dataset_dir, 900, 12, meta["num_puzzle_identifiers"])
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["evaluate", str(tmp_path / "model"), "--out", str(out), "--strategy", spec])
    assert result.exit_code == 2, result.output
    assert message in result.output and not (out / "eval.json").exists()
