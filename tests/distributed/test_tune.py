"""Ray Tune on a real local Ray (2 CPUs): 4 trials of the smoke search space, ASHA stops weak ones, tables are
written, and the best trial's best checkpoint loads with our loader and evaluates to the reported accuracy; a space
with named variants (an ablation grid) runs every variant x seed to its full budget with the variant's overrides."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ray_fixtures import smoke_config

from trm.config import ConfigError
from trm.data.loader import PuzzleDataset
from trm.distributed.space import VARIANT, SearchSpace, check_variants, trial_config
from trm.distributed.tune import load_space, run_tune
from trm.errors import UsageError
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


VARIANTS_YAML = """
fixed:
  train.max_steps: 10
  train.eval_interval: 5
  train.checkpoint_interval: 5
variants:
  baseline: {}
  shallow-no-ema: {model.H_cycles: 1, train.ema: false}
space:
  train.seed: {grid: [0, 1]}
search:
  scheduler: fifo
  grace_period: 1
"""


def test_variants_expand_into_their_overrides_and_bad_ones_name_the_variant(tmp_path):
    path = tmp_path / "ablations.yaml"
    path.write_text(VARIANTS_YAML)
    space = load_space(path)
    assert space.grid_size() == 4 and space.search.scheduler == "fifo"
    base = smoke_config(tmp_path)
    shallow = trial_config(base, space, {VARIANT: "shallow-no-ema", "train.seed": 1})
    assert (shallow.model.H_cycles, shallow.train.ema, shallow.train.seed, shallow.train.max_steps) == (1, False, 1, 10)
    baseline = trial_config(base, space, {VARIANT: "baseline", "train.seed": 0})
    assert (baseline.model.H_cycles, baseline.train.ema) == (base.model.H_cycles, base.train.ema)
    check_variants(base, space)

    path.write_text(VARIANTS_YAML.replace("train.ema: false", "train.emma: false"))
    with pytest.raises(ConfigError, match=r"variants\.shallow-no-ema.*train\.emma"):
        load_space(path)
    path.write_text(VARIANTS_YAML.replace("train.ema: false", "train.ema_rate: 2.0"))  # above 1
    with pytest.raises(ConfigError, match=r"variants\.shallow-no-ema"):
        check_variants(base, load_space(path))
    odd = VARIANTS_YAML.replace("baseline: {}", "baseline: {train.grad_accum_steps: 3}")  # 3 does not divide it
    with pytest.raises(UsageError, match="grad_accum_steps=3"):  # before any Ray starts: no local_ray fixture here
        run_tune(base, SearchSpace.model_validate(yaml.safe_load(odd)), storage=tmp_path / "s", out_dir=tmp_path)
    path.write_text(VARIANTS_YAML.replace("baseline: {}", "baseline: {train.seed: 3}"))
    with pytest.raises(ConfigError, match=r"variants\.baseline: train\.seed also searched"):
        load_space(path)


def test_a_variant_grid_runs_every_variant_and_seed_to_its_full_budget(local_ray, smoke_data_root, tmp_path):
    space = SearchSpace.model_validate(yaml.safe_load(VARIANTS_YAML))
    config = smoke_config(smoke_data_root)
    result = run_tune(config, space, storage=tmp_path / "store", name="ablate", out_dir=tmp_path / "out")
    assert not any(t["error"] for t in result.trials), result.trials
    runs = sorted((t[f"param:{VARIANT}"], t["param:train.seed"]) for t in result.trials)
    assert runs == [("baseline", 0), ("baseline", 1), ("shallow-no-ema", 0), ("shallow-no-ema", 1)]
    assert result.stopped_early == 0 and all(t["reports"] == 2 for t in result.trials)
    for trial in result.trials:  # each trial trained the variant it is named after
        _, trained = load_exported(trial["checkpoint"])
        assert trained.model.H_cycles == (1 if trial[f"param:{VARIANT}"] == "shallow-no-ema" else config.model.H_cycles)
        assert trained.train.ema == (trial[f"param:{VARIANT}"] == "baseline")
