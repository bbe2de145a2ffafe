"""The model card's curve reader: trainer-style JSON lines in, named series out; bad lines named precisely."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trm.store.card import curve_panels, read_metrics_log, render_training_curve


def test_series_grouped_by_kind_and_step(tmp_path: Path) -> None:
    log = tmp_path / "metrics.jsonl"
    log.write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                {"kind": "info", "step": 0, "num_params": 131970, "world_size": 1},
                {
                    "kind": "train",
                    "step": 10,
                    "time": 1.0,
                    "lm_loss": 1.5,
                    "lr": 0.1,
                    "count": 64.0,
                    "halt": {"steps": 3},
                },
                {"kind": "train", "step": 20, "time": 2.0, "lm_loss": "nan", "exact_accuracy": 0.5},
                {"kind": "train", "step": 30, "count": 0, "exact_accuracy": 0.0},  # no halted rows: accuracy undefined
                {"kind": "eval", "mode": "fixed", "step": 20, "exact_accuracy": 0.25, "per_step": [{"step": 1}]},
            ]
        )
        + "\n\n"
    )
    series = read_metrics_log(log)
    assert series == {
        "info/num_params": [(0.0, 131970.0)],
        "train/lm_loss": [(10.0, 1.5)],
        "train/count": [(10.0, 64.0), (30.0, 0.0)],
        "train/halt/steps": [(10.0, 3.0)],
        "train/exact_accuracy": [(20.0, 0.5)],
        "eval/fixed/exact_accuracy": [(20.0, 0.25)],
    }
    losses, accuracies = curve_panels(series)
    assert sorted(losses) == ["train/lm_loss"]
    assert sorted(accuracies) == ["eval/fixed/exact_accuracy", "train/exact_accuracy"]
    render_training_curve(log, tmp_path / "curve.png")
    assert (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"


def test_bad_line_names_file_and_line(tmp_path: Path) -> None:
    log = tmp_path / "metrics.jsonl"
    log.write_text('{"step": 1, "loss": 1}\n{"step": 2, "loss":\n')
    with pytest.raises(ValueError, match=r"metrics\.jsonl:2: not a JSON object"):
        read_metrics_log(log)
    log.write_text("[1, 2]\n")
    with pytest.raises(ValueError, match=r"metrics\.jsonl:1: expected a JSON object, got list"):
        read_metrics_log(log)


def test_the_card_sets_each_strategy_against_its_compute() -> None:
    """Rows sorted by forward passes, the official fixed pass among them; no table without strategies."""
    from datetime import UTC, datetime

    from trm.store.card import render_model_card
    from trm.store.manifest import Manifest

    metrics = {  # flat, as the evaluate stage publishes them
        "fixed/exact_accuracy": 0.7,
        "fixed/steps": 16.0,
        "strategy/trajectories:trajectories=4/exact_accuracy": 0.8,
        "strategy/trajectories:trajectories=4/forward_passes": 64.0,
        "strategy/adaptive:halt_threshold=1.5/exact_accuracy": 0.69,
        "strategy/adaptive:halt_threshold=1.5/forward_passes": 6.5,
    }
    manifest = Manifest(name="m", version=1, created_at=datetime.now(UTC), files={}, metrics=metrics)
    card = render_model_card(manifest, "artifacts")
    section = card.split("## Accuracy against compute", 1)[1].split("##", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "strategy" not in line]
    assert [row.split("|")[1].strip() for row in rows] == [
        "adaptive:halt_threshold=1.5",
        "fixed (official)",
        "trajectories:trajectories=4",
    ]
    assert "64" in rows[2] and "0.8" in rows[2]
    fixed_only = {key: value for key, value in metrics.items() if key.startswith("fixed/")}
    plain = render_model_card(manifest.model_copy(update={"metrics": fixed_only}), "artifacts")
    assert "Accuracy against compute" not in plain
