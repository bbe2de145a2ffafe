"""Selection on the validation split: which step a run hands on, early stopping, and that the test split can never
be used for either."""

from __future__ import annotations

import json
import math

import pytest
import torch
from train_fixtures import tiny_config

from trm.config import ConfigError, EvalConfig, load_config
from trm.evaluate.training import local_run_hooks
from trm.train.checkpoint import checkpoint_dir
from trm.train.export import load_exported
from trm.train.hooks import Report
from trm.train.loop import train
from trm.train.selection import Selector, checkpoint_score


def summaries(exact: float, token: float = 0.5) -> dict:
    return {"fixed": {"exact_accuracy": exact, "accuracy": token, "count": 10, "seconds": 1.0}}


def test_best_is_the_first_step_with_the_highest_score_and_patience_stops():
    selector = Selector(EvalConfig(patience=2))
    seen = [selector.observe(step, summaries(x)) for step, x in [(5, 0.1), (10, 0.5), (15, 0.5), (20, 0.3)]]
    assert seen == [True, True, False, False]
    assert selector.exhausted()
    chosen = selector.selection(final_step=20)
    assert (chosen.rule, chosen.split, chosen.metric, chosen.step) == ("best", "val", "fixed/exact_accuracy", 10)
    assert chosen.value == 0.5 and chosen.evaluations == 4 and chosen.stopped_early
    assert "fixed/seconds" not in chosen.metrics  # timings are not part of the record


def test_token_accuracy_breaks_ties_and_last_keeps_the_final_step():
    selector = Selector(EvalConfig(select="last"))
    assert selector.observe(5, summaries(0.0, token=0.2))
    assert selector.observe(10, summaries(0.0, token=0.3))  # same exact accuracy, better tokens: an improvement
    assert not selector.wants_checkpoint(True)  # "last" never needs extra checkpoints
    assert selector.selection(final_step=10).step == 10
    assert selector.selection(final_step=12).metrics == {}  # no evaluation at the final step


def test_state_survives_a_checkpoint_round_trip():
    first = Selector(EvalConfig(patience=3))
    first.observe(5, summaries(0.4))
    first.observe(10, summaries(0.2))
    second = Selector(EvalConfig(patience=3))
    second.load(json.loads(json.dumps(first.state())))
    assert not second.observe(15, summaries(0.3))
    assert second.since_best == 2 and second.best_step == 5 and second.evaluations == 3


def test_a_checkpoint_between_evaluations_has_no_score():
    evaluated = Report(step=10, total_steps=20, train={}, evals=summaries(0.5), eval_step=10)
    stale = Report(step=12, total_steps=20, train={}, evals=summaries(0.5), eval_step=10)
    assert checkpoint_score(evaluated, "exact_accuracy") == pytest.approx(0.5 + 1e-3 * 0.5)
    assert math.isnan(checkpoint_score(stale, "exact_accuracy"))


def test_ray_keeps_the_selected_step_when_a_later_evaluation_ties_it():
    """Ray Train ranks equal checkpoint scores by report order (the later above) and deletes all but the top
    ``num_to_keep``; the selected step must still rank first, or its checkpoint is gone when it is handed on."""
    from ray.train import Checkpoint
    from ray.train._internal.checkpoint_manager import _insert_into_sorted_list
    from ray.train._internal.session import _TrainingResult

    selector = Selector(EvalConfig())
    ranked: list = []
    order: dict = {}
    for index, step in enumerate((10, 20, 30)):  # 20 and 30 tie at the best score: 20 is selected
        evals = summaries(0.5 if step == 10 else 1.0, token=1.0)
        selector.observe(step, evals)
        report = Report(step=step, total_steps=30, train={}, evals=evals, eval_step=step, best_step=selector.best_step)
        result = _TrainingResult(
            Checkpoint(f"/ckpt/{step}"), {"step": step, "score": checkpoint_score(report, "exact_accuracy")}
        )
        order[result.checkpoint] = index
        _insert_into_sorted_list(ranked, result, key=lambda r: r.metrics["score"], checkpoint_to_report_index=order)
    assert selector.best_step == 20
    assert ranked[-1].metrics["step"] == 20  # what num_to_keep=1 keeps
    tied = Report(step=30, total_steps=30, train={}, evals=summaries(1.0, 1.0), eval_step=30, best_step=20)
    assert checkpoint_score(tied, "exact_accuracy") == pytest.approx(1.001)  # a hair below, not a different score


def test_the_test_split_cannot_drive_selection():
    with pytest.raises(ConfigError, match=r"eval\.split: 'test' is measured once"):
        load_config("smoke", ["eval.split=test"])


def test_a_metric_the_evaluation_lacks_is_named():
    with pytest.raises(ValueError, match=r"eval\.metric 'pass@2' is not in the evaluation summary"):
        Selector(EvalConfig(metric="pass@2")).observe(5, summaries(0.1))


def test_a_local_run_exports_its_best_validation_step(tiny_dataset, tmp_path):
    config = tiny_config(tiny_dataset, tmp_path, "train.eval_interval=5", "train.max_steps=20", "run.name=best")
    result = train(config, hooks=local_run_hooks(config), progress=False)
    selection = result.selection
    assert selection is not None and selection.split == "val" and selection.evaluations == 4
    assert selection.step in (5, 10, 15, 20)
    recorded = json.loads((result.run_dir / "selection.json").read_text())
    assert recorded == selection.model_dump(mode="json")
    evals = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    scores = {r["step"]: r["exact_accuracy"] + 1e-3 * r["accuracy"] for r in evals if r.get("kind") == "eval"}
    assert selection.step == max(scores, key=lambda step: (scores[step], -step))
    exported, _ = load_exported(result.export_dir)
    kept, _ = load_exported(checkpoint_dir(result.run_dir, selection.step))
    for name, tensor in exported.state_dict().items():
        assert torch.equal(tensor, kept.state_dict()[name]), name


def test_patience_stops_a_run_that_no_longer_improves(tiny_dataset, tmp_path):
    frozen = ("train.lr=0", "train.puzzle_emb_lr=0")  # nothing changes, so nothing improves after the first eval
    config = tiny_config(
        tiny_dataset,
        tmp_path,
        "train.eval_interval=4",
        "train.max_steps=40",
        "eval.patience=2",
        "run.name=stop",
        *frozen,
    )
    result = train(config, hooks=local_run_hooks(config), progress=False)
    assert result.stopped_early and result.steps == 12, result.steps  # evals at 4 (best), 8, 12: patience spent
    assert result.selection is not None and result.selection.step == 4 and result.selection.stopped_early
    assert (checkpoint_dir(result.run_dir, 12) / "state.json").is_file()  # the stop is checkpointed
