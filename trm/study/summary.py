"""A study's table: each variant's test numbers over seeds, its difference from the baseline, and whether the
paper's ordering holds, row by row and over all rows.

A row's verdict compares the difference of means with its standard error (the two rows' seed spreads): the
paper says every ablation is worse than the baseline, so a row "reproduces" when it is lower by more than twice
that error, is "lower, within noise" when lower by less, and is reported as "not reproduced" otherwise. Nothing
here is tuned: the numbers in are the numbers out.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence

from pydantic import BaseModel, Field

from trm.distributed.space import StudySettings

NOISE_SIGMAS = 2.0  # a difference counts as real beyond this many standard errors


class Spread(BaseModel):
    """Mean, sample standard deviation, min and max of one number over seeds (all in percent)."""

    values: list[float]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values) if self.values else math.nan

    @property
    def std(self) -> float:
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0

    def text(self) -> str:
        if not self.values:
            return "-"
        return f"{self.mean:.1f} ± {self.std:.1f}" if len(self.values) > 1 else f"{self.mean:.1f}"


class TrialNumbers(BaseModel):
    """What the summary needs of one tested trial (fractions in [0, 1], as measured)."""

    variant: str
    seed: int
    test_exact: float
    test_accuracy: float
    val_exact: float | None = None
    train_seconds: float | None = None


class VariantRow(BaseModel):
    variant: str
    about: str = ""
    paper: float | None = None
    paper_row: str = ""
    seeds: list[int]
    test_exact: Spread
    test_accuracy: Spread
    val_exact: Spread
    train_minutes: Spread
    delta: float | None = Field(None, description="test exact mean minus the baseline's, points")
    delta_error: float | None = Field(None, description="standard error of that difference, points")
    paper_delta: float | None = None
    verdict: str = ""


class StudySummary(BaseModel):
    name: str
    baseline: str
    rows: list[VariantRow]
    kendall_tau: float | None = Field(None, description="rank agreement of paper and measured means (rows with both)")
    swapped: list[tuple[str, str]] = Field(default_factory=list, description="pairs the paper orders the other way")
    tied: list[tuple[str, str]] = Field(default_factory=list, description="pairs the paper orders, measured equal")
    ordering_verdict: str = ""


def row_verdict(delta: float, error: float) -> str:
    """The verdict for an ablation the paper reports below the baseline, from the measured difference of means
    and its standard error (points)."""
    if delta < 0 and -delta > NOISE_SIGMAS * error:
        return "reproduced: lower than the baseline beyond noise"
    if delta < 0:
        return "lower, within noise: direction agrees, not shown"
    if delta > NOISE_SIGMAS * error:
        return "not reproduced: higher than the baseline beyond noise"
    return "not reproduced: not lower than the baseline (within noise)"


def kendall_tau(first: Sequence[float], second: Sequence[float]) -> float | None:
    """Kendall's tau-a of two equally long sequences (ties count zero); None below two items."""
    pairs = list(itertools.combinations(range(len(first)), 2))
    if not pairs:
        return None
    score = sum(_sign(first[i] - first[j]) * _sign(second[i] - second[j]) for i, j in pairs)
    return score / len(pairs)


def _sign(value: float) -> int:
    return (value > 0) - (value < 0)


def _row(variant: str, trials: list[TrialNumbers], study: StudySettings) -> VariantRow:
    described = study.rows.get(variant)
    trials = sorted(trials, key=lambda t: t.seed)
    return VariantRow(
        variant=variant,
        about=described.about if described else "",
        paper=described.paper if described else None,
        paper_row=described.paper_row if described else "",
        seeds=[t.seed for t in trials],
        test_exact=Spread(values=[100 * t.test_exact for t in trials]),
        test_accuracy=Spread(values=[100 * t.test_accuracy for t in trials]),
        val_exact=Spread(values=[100 * t.val_exact for t in trials if t.val_exact is not None]),
        train_minutes=Spread(values=[t.train_seconds / 60 for t in trials if t.train_seconds is not None]),
    )


def _compare(row: VariantRow, base: VariantRow) -> VariantRow:
    if row.variant == base.variant:
        return row.model_copy(update={"verdict": "baseline"})
    delta = row.test_exact.mean - base.test_exact.mean
    n_row, n_base = len(row.test_exact.values), len(base.test_exact.values)
    paper_delta = row.paper - base.paper if row.paper is not None and base.paper is not None else None
    if min(n_row, n_base) < 2:  # one seed has no spread: no noise estimate, no verdict beyond the sign
        error = None
        verdict = "one seed: no noise estimate, no verdict"
    else:
        error = math.sqrt(row.test_exact.std**2 / n_row + base.test_exact.std**2 / n_base)
        verdict = row_verdict(delta, error) if paper_delta is not None and paper_delta < 0 else "no paper number"
    return row.model_copy(update={"delta": delta, "delta_error": error, "paper_delta": paper_delta, "verdict": verdict})


def summarize_study(trials: list[TrialNumbers], study: StudySettings, variants: Sequence[str]) -> StudySummary:
    """The table in ``variants`` order (a variant without trials is an error naming it), each row compared with
    the baseline, and the paper's ordering checked over the rows that have a paper number."""
    by_variant = {v: [t for t in trials if t.variant == v] for v in variants}
    if missing := [v for v, ts in by_variant.items() if not ts]:
        raise ValueError(f"study {study.name}: no tested trial for variant(s) {', '.join(missing)}")
    rows = [_row(v, ts, study) for v, ts in by_variant.items()]
    base = next(r for r in rows if r.variant == study.baseline)
    rows = [_compare(r, base) for r in rows]
    ranked = [(r.variant, r.paper, r.test_exact.mean) for r in rows if r.paper is not None]
    tau = kendall_tau([paper for _, paper, _ in ranked], [measured for _, _, measured in ranked])
    swapped = [
        (a, b)
        for (a, paper_a, ours_a), (b, paper_b, ours_b) in itertools.combinations(ranked, 2)
        if _sign(paper_a - paper_b) * _sign(ours_a - ours_b) < 0
    ]
    tied = [(a, b) for (a, pa, oa), (b, pb, ob) in itertools.combinations(ranked, 2) if pa != pb and oa == ob]
    return StudySummary(
        name=study.name,
        baseline=study.baseline,
        rows=rows,
        kendall_tau=tau,
        swapped=swapped,
        tied=tied,
        ordering_verdict=_ordering_verdict(tau, swapped, tied, len(ranked)),
    )


def _ordering_verdict(tau: float | None, swapped: list[tuple[str, str]], tied: list[tuple[str, str]], rows: int) -> str:
    if tau is None:
        return "fewer than two rows with a paper number: no ordering to compare"
    pairs = rows * (rows - 1) // 2
    if not swapped and not tied:
        return (
            f"the paper's ordering is reproduced: all {pairs} pairs of rows in the same order (Kendall tau {tau:.2f})"
        )
    agreeing = pairs - len(swapped) - len(tied)
    return (
        f"the paper's ordering is not fully reproduced: {agreeing} of {pairs} pairs in the paper's order, "
        f"{len(swapped)} swapped, {len(tied)} tied (Kendall tau {tau:.2f})"
    )
