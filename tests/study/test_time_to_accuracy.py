"""Time to accuracy on hand-made validation curves: interpolation, the common target, equal steps and equal time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trm.study.time_to_accuracy import Curve, compare_time_to_accuracy, read_curve, time_to_reach, value_at
from trm.train.metrics_log import covered_seconds, training_segments

BASELINE = Curve(steps=[100, 200, 300, 400], seconds=[100.0, 200.0, 300.0, 400.0], val_exact=[0.0, 0.2, 0.4, 0.6])
FASTER = Curve(steps=[100, 200, 300, 400], seconds=[40.0, 100.0, 180.0, 250.0], val_exact=[0.0, 0.1, 0.3, 0.5])


def test_value_at_is_linear_between_evaluations_and_flat_after_the_end() -> None:
    assert value_at(BASELINE, 250.0) == pytest.approx(0.3)
    assert value_at(BASELINE, 50.0) == pytest.approx(0.0)
    assert value_at(BASELINE, 1000.0) == pytest.approx(0.6)
    early = Curve(steps=[100, 200], seconds=[100.0, 200.0], val_exact=[0.4, 0.6])
    assert value_at(early, 50.0) == pytest.approx(0.2)  # from (0 s, 0): an untrained model solves nothing
    assert time_to_reach(early, 0.2) == pytest.approx(50.0)


def test_time_to_reach_interpolates_and_says_never() -> None:
    assert time_to_reach(BASELINE, 0.5) == pytest.approx(350.0)
    assert time_to_reach(BASELINE, 0.2) == pytest.approx(200.0)
    assert time_to_reach(BASELINE, 0.7) is None


def test_comparison_at_equal_steps_equal_time_and_a_common_target() -> None:
    result = compare_time_to_accuracy("curriculum", "baseline", {0: FASTER, 1: FASTER}, {0: BASELINE, 1: BASELINE})
    assert result.target == pytest.approx(0.5)  # the lower of the two mean finals
    (first, _) = result.seeds
    assert first.baseline_at_variant_end == pytest.approx(0.3)  # the baseline at 250 s
    assert first.baseline_to_target == pytest.approx(350.0)
    assert first.variant_to_target == pytest.approx(250.0)
    assert result.wall_time_ratio == pytest.approx(400.0 / 250.0)
    assert result.time_to_target_ratio == pytest.approx(350.0 / 250.0)
    with pytest.raises(ValueError, match="no seed in common"):
        compare_time_to_accuracy("curriculum", "baseline", {0: FASTER}, {1: BASELINE})


def test_read_curve_takes_eval_records_timed_from_the_first_record(tmp_path: Path) -> None:
    log = tmp_path / "metrics.jsonl"
    records = [
        {"kind": "info", "step": 0, "time": 1000.0},
        {"kind": "train", "step": 20, "time": 1010.0, "exact_accuracy": 0.9},
        {"kind": "eval", "step": 200, "time": 1100.0, "exact_accuracy": 0.25, "accuracy": 0.8},
        {"kind": "eval", "step": 100, "time": 1050.0, "exact_accuracy": 0.1, "accuracy": 0.7, "mode": "fixed"},
        {"kind": "eval", "step": 100, "time": 1060.0, "exact_accuracy": 0.9, "accuracy": 0.9, "mode": "adaptive"},
    ]
    log.write_text("".join(json.dumps(r) + "\n" for r in records))
    curve = read_curve(log)
    assert curve.steps == [100, 200] and curve.seconds == [50.0, 100.0] and curve.val_exact == [0.1, 0.25]
    log.write_text(json.dumps(records[0]) + "\n")
    with pytest.raises(ValueError, match=r"metrics\.jsonl: no evaluation records"):
        read_curve(log)


def test_a_trial_stopped_and_resumed_is_timed_without_its_stop(tmp_path: Path) -> None:
    """The log of a trial killed after its step-200 checkpoint and resumed an hour later: the lines it wrote after
    the checkpoint were dropped on resume, and the hour is no training time."""
    log = tmp_path / "metrics.jsonl"
    records = [
        {"kind": "info", "step": 0, "time": 1000.0},
        {"kind": "eval", "step": 100, "time": 1050.0, "exact_accuracy": 0.1},
        {"kind": "eval", "step": 200, "time": 1100.0, "exact_accuracy": 0.2},
        {"kind": "resume", "step": 200, "time": 4700.0},
        {"kind": "eval", "step": 300, "time": 4750.0, "exact_accuracy": 0.3},
    ]
    log.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert read_curve(log).seconds == [50.0, 100.0, 150.0]
    assert training_segments(records) == [(1000.0, 1100.0), (4700.0, 4750.0)]
    # two trials side by side, the second starting 60 s later, with the first one's stop: counted once each
    assert covered_seconds([(1000.0, 1100.0), (4700.0, 4750.0), (1060.0, 1200.0)]) == pytest.approx(250.0)
