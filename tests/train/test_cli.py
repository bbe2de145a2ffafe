"""`trm train` (fresh run, then --resume to a larger budget) and `trm import-official` through the real CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_fixtures import TINY_OVERRIDES

from trm.cli import app
from trm.model.official import to_official_state_dict
from trm.train.export import load_exported
from trm.train.metrics_log import read_metrics

pytestmark = pytest.mark.cli


def _sets(*items: str) -> list[str]:
    return [arg for item in items for arg in ("--set", item)]


def test_train_then_resume_via_cli(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    base = [
        "train",
        "--preset",
        "smoke",
        "--out",
        str(run),
        "--no-progress",
        "--device",
        "cpu",
        *_sets(f"data.name={tiny_dataset}", *TINY_OVERRIDES, "train.eval_interval=3", "train.log_interval=1"),
    ]
    first = CliRunner().invoke(app, [*base, *_sets("train.max_steps=4")])
    assert first.exit_code == 0, first.output
    assert (run / "checkpoints" / "step_4" / "state.safetensors").is_file()
    assert (run / "export" / "model.safetensors").is_file() and (run / "config.json").is_file()

    second = CliRunner().invoke(app, [*base, *_sets("train.max_steps=7"), "--resume"])
    assert second.exit_code == 0, second.output
    records = read_metrics(run / "metrics.jsonl")
    train_steps = [r["step"] for r in records if r["kind"] == "train"]
    assert train_steps == list(range(1, 8)), "resume must continue the log at step 5 without gaps or repeats"
    assert [r["step"] for r in records if r["kind"] == "resume"] == [4]  # where the second stretch of training began
    evals = [r for r in records if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [3, 4, 6, 7]
    assert all(0.0 <= r["exact_accuracy"] <= 1.0 and len(r["per_step"]) == 4 for r in evals)
    assert json.loads((run / "checkpoints" / "step_7" / "state.json").read_text())["step"] == 7
    assert json.loads((run / "eval" / "step_7" / "eval.json").read_text())["step"] == 7


def test_train_rejects_unknown_override(tiny_dataset, tmp_path):
    result = CliRunner().invoke(app, ["train", "--preset", "smoke", "--set", "train.no_such_key=1", "--no-progress"])
    assert result.exit_code == 2
    assert "no_such_key" in result.output


def test_import_official_writes_our_export(tiny_dataset, tmp_path):
    model, _ = load_exported(_export_tiny(tiny_dataset, tmp_path))
    official = to_official_state_dict({k: v.clone() for k, v in model.state_dict().items()}, compiled=True)
    source = tmp_path / "official.safetensors"
    save_file(official, str(source))
    out = tmp_path / "imported"
    result = CliRunner().invoke(
        app,
        [
            "import-official",
            str(source),
            "--preset",
            "smoke",
            "--data",
            str(tiny_dataset),
            "--out",
            str(out),
            *_sets(*TINY_OVERRIDES),
        ],
    )
    assert result.exit_code == 0, result.output
    imported, config = load_exported(out)
    assert config.model.seq_len == 8 and config.model.vocab_size == 6
    for key, value in model.state_dict().items():
        assert torch.equal(imported.state_dict()[key], value), key


def _export_tiny(tiny_dataset: Path, tmp_path: Path) -> Path:
    run = tmp_path / "src"
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--preset",
            "smoke",
            "--out",
            str(run),
            "--no-progress",
            *_sets(f"data.name={tiny_dataset}", *TINY_OVERRIDES, "train.max_steps=2", "eval.modes=[]"),
        ],
    )
    assert result.exit_code == 0, result.output
    return run / "export"


def test_build_parameters_are_not_part_of_a_preset(tiny_dataset, tmp_path):
    """Dataset build parameters live in params.yaml only: a preset override of them is an unknown key."""
    result = CliRunner().invoke(app, ["train", "--preset", "smoke", "--set", "data.build.num_aug=0", "--no-progress"])
    assert result.exit_code == 2
    assert "unknown key 'build' in data" in result.output
