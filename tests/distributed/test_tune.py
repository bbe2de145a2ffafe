"""Ray Tune on a real local Ray (2 CPUs): 4 trials of the smoke search space, ASHA stops weak ones, tables are
written, and the best trial's best checkpoint loads with our loader and evaluates to the reported accuracy."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ray_fixtures import smoke_config

from trm.config import ConfigError
from trm.data.loader import PuzzleDataset
from trm.distributed.tune import load_space, run_tune
from trm.evaluate.inference import evaluate
from trm.train.export import load_exported


def test_asha_search_returns_a_loadable_best_checkpoint(local_ray, smoke_data_root, tmp_path):
    config = smoke_config(smoke_data_root)
    space = load_space("smoke")
    assert space.grid_size() * space.search.num_samples == 4
    result = run_tune(config, space, storage=tmp_path / "store", name="search", out_dir=tmp_path / "out")

    assert len(result.trials) == 4 and not any(t["error"] for t in result.trials), result.trials
    assert result.stopped_early >= 1, "ASHA should stop at least one weak trial early"
    assert max(t["reports"] for t in result.trials) == 4  # the strongest trial ran its full budget
    scores = [t["eval_score"] for t in result.trials]
    assert result.best_metrics["eval_score"] == max(scores)
    with open(result.table_csv) as handle:
        assert len(list(csv.DictReader(handle))) == 4
    assert Path(result.table_markdown).read_text().count("\n") == 4 + 2

    model, loaded = load_exported(result.best_checkpoint)
    assert loaded.train.lr == result.best_params["train.lr"]
    again = evaluate(model, PuzzleDataset.open(config.data.resolve_path(), "val"), config.eval.batch_size)
    assert again.metrics["exact_accuracy"] == pytest.approx(result.best_metrics["eval_exact_accuracy"], abs=1e-6)
    assert again.metrics["accuracy"] == pytest.approx(result.best_metrics["eval_accuracy"], abs=1e-6)


def test_bad_search_space_names_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("space:\n  train.lr: {normal: [0, 1]}\n")
    with pytest.raises(ConfigError, match=r"train\.lr"):
        load_space(bad)
    with pytest.raises(ConfigError, match="unknown search space"):
        load_space("no-such-space")


@pytest.mark.cli
def test_tune_cli_rejects_an_unknown_space_without_starting_ray():
    from typer.testing import CliRunner

    from trm.cli import app

    result = CliRunner().invoke(app, ["tune", "--preset", "smoke", "--space", "no-such-space"])
    assert result.exit_code == 2 and "unknown search space" in result.output
