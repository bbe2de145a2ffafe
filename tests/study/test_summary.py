"""The study table on hand-made numbers: means and spreads over seeds, each row's verdict against the baseline,
the paper's ordering; and the study block of a search space, checked before anything runs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from trm.config import ConfigError
from trm.distributed.space import SearchSpace, StudySettings, load_space
from trm.study.summary import TrialNumbers, kendall_tau, row_verdict, summarize_study

STUDY = StudySettings.model_validate(
    {
        "name": "toy-ablations",
        "baseline": "base",
        "rows": {
            "base": {"paper": 87.4},
            "clear": {"paper": 56.5},  # far below the baseline, tight seeds: reproduced
            "noisy": {"paper": 79.9},  # a little below, wide seeds: within noise
            "higher": {"paper": 73.7},  # measured above the baseline: not reproduced
            "extra": {"about": "beyond the paper"},
        },
    }
)
VARIANTS = ["base", "clear", "noisy", "higher", "extra"]
MEASURED = {  # test exact accuracy per seed (fractions, as measured)
    "base": [0.50, 0.52, 0.48],
    "clear": [0.10, 0.12, 0.08],
    "noisy": [0.30, 0.60, 0.45],
    "higher": [0.70, 0.72, 0.68],
    "extra": [0.49, 0.51, 0.50],
}


def trials() -> list[TrialNumbers]:
    return [
        TrialNumbers(variant=v, seed=seed, test_exact=x, test_accuracy=0.5 + x / 2, val_exact=x, train_seconds=60.0)
        for v, values in MEASURED.items()
        for seed, x in enumerate(values)
    ]


def test_means_spreads_and_differences_are_the_hand_computed_ones() -> None:
    summary = summarize_study(trials(), STUDY, VARIANTS)
    rows = {r.variant: r for r in summary.rows}
    assert [r.variant for r in summary.rows] == VARIANTS
    assert rows["base"].test_exact.mean == pytest.approx(50.0)
    assert rows["base"].test_exact.std == pytest.approx(2.0)  # sample std of 50, 52, 48
    assert rows["noisy"].test_exact.std == pytest.approx(15.0)
    assert rows["clear"].delta == pytest.approx(-40.0)
    assert rows["clear"].delta_error == pytest.approx(math.sqrt(4 / 3 + 4 / 3))
    assert rows["clear"].paper_delta == pytest.approx(56.5 - 87.4)
    assert rows["base"].train_minutes.mean == pytest.approx(1.0)
    assert rows["clear"].seeds == [0, 1, 2]


def test_each_row_gets_its_verdict_and_nothing_is_tuned_away() -> None:
    rows = {r.variant: r for r in summarize_study(trials(), STUDY, VARIANTS).rows}
    assert rows["base"].verdict == "baseline"
    assert rows["clear"].verdict.startswith("reproduced")
    assert rows["noisy"].verdict.startswith("lower, within noise")  # -5 points, standard error ~8.8
    assert rows["higher"].verdict.startswith("not reproduced: higher")
    assert rows["extra"].verdict == "no paper number"
    assert row_verdict(0.5, 2.0).startswith("not reproduced: not lower")


def test_the_paper_ordering_is_checked_pair_by_pair() -> None:
    summary = summarize_study(trials(), STUDY, VARIANTS)
    # paper: base 87.4 > noisy 79.9 > higher 73.7 > clear 56.5; measured: higher 70 > base 50 > noisy 45 > clear 10
    assert set(summary.swapped) == {("base", "higher"), ("noisy", "higher")}
    assert summary.kendall_tau == pytest.approx((4 - 2) / 6)
    assert "4 of 6 pairs" in summary.ordering_verdict
    agreeing = [t for t in trials() if t.variant != "higher"]
    fewer = summarize_study(agreeing, STUDY, ["base", "clear", "noisy", "extra"])
    assert fewer.swapped == [] and fewer.kendall_tau == 1.0 and "is reproduced" in fewer.ordering_verdict


def test_one_seed_gives_no_noise_estimate_and_ties_are_not_agreement() -> None:
    first_seed = [t for t in trials() if t.seed == 0]
    rows = {r.variant: r for r in summarize_study(first_seed, STUDY, VARIANTS).rows}
    assert rows["clear"].delta == pytest.approx(-40.0) and rows["clear"].delta_error is None
    assert rows["clear"].verdict.startswith("one seed")
    tied = [t.model_copy(update={"test_exact": 0.5}) if t.variant == "noisy" else t for t in trials()]
    summary = summarize_study([t for t in tied if t.variant != "higher"], STUDY, ["base", "clear", "noisy"])
    assert summary.tied == [("base", "noisy")] and summary.swapped == []
    assert "1 tied" in summary.ordering_verdict and "not fully reproduced" in summary.ordering_verdict


def test_kendall_tau_and_a_missing_variant() -> None:
    assert kendall_tau([1, 2, 3], [10, 20, 30]) == 1.0
    assert kendall_tau([1, 2, 3], [30, 20, 10]) == -1.0
    assert kendall_tau([1], [1]) is None
    with pytest.raises(ValueError, match=r"no tested trial for variant.*extra"):
        summarize_study([t for t in trials() if t.variant != "extra"], STUDY, VARIANTS)


def test_a_study_block_must_name_real_variants() -> None:
    variants = {"base": {}, "no-ema": {"train.ema": False}}
    with pytest.raises(ValueError, match=r"study\.baseline: 'nope' is not one of the variants"):
        SearchSpace.model_validate({"variants": variants, "study": {"name": "s", "baseline": "nope"}})
    with pytest.raises(ValueError, match=r"study\.rows: ghost not among the variants"):
        SearchSpace.model_validate(
            {"variants": variants, "study": {"name": "s", "baseline": "base", "rows": {"ghost": {"paper": 1.0}}}}
        )


def test_the_ablations_space_is_a_study_of_the_paper_rows_with_three_seeds() -> None:
    space = load_space("ablations")
    assert space.study is not None and space.search.scheduler == "fifo"
    assert len(space.space["train.seed"]["grid"]) >= 3
    papers = {name: row.paper for name, row in space.study.rows.items() if row.paper is not None}
    assert papers == {
        "baseline": 87.4,
        "no-ema": 79.9,
        "4-layers-n1": 79.5,
        "T2-n2": 73.7,
        "1-step-gradient": 56.5,
    }
    assert "train.depth_curriculum" in space.variants["depth-curriculum"]


def test_a_bad_study_file_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad-study.yaml"
    bad.write_text("variants: {a: {}}\nstudy: {name: s, baseline: b}\n")
    with pytest.raises(ConfigError, match=r"(?s)bad-study.yaml: invalid search space.*study.baseline"):
        load_space(bad)
