"""Time to accuracy of a training variant against the baseline, from the trials' own metrics logs.

Each trial's validation curve is (step, seconds since its start, val exact accuracy) at every evaluation. Two
comparisons, per seed and then averaged: at equal steps (the end of the shared step budget) and at equal wall
time (the baseline's accuracy, interpolated linearly between its evaluations, when the variant finished), plus
the time each needs to first reach a common target: the lower of the two mean final accuracies.
"""

from __future__ import annotations

import itertools
import statistics
from pathlib import Path

from pydantic import BaseModel, Field

from trm.train.metrics_log import read_metrics, training_clock


class Curve(BaseModel):
    """A trial's validation curve; ``seconds`` counts training time from its first metrics record."""

    steps: list[int]
    seconds: list[float]
    val_exact: list[float]

    @property
    def final(self) -> float:
        return self.val_exact[-1]

    @property
    def duration(self) -> float:
        return self.seconds[-1]


def read_curve(metrics_log: Path, mode: str = "fixed") -> Curve:
    """The ``kind: eval`` records of one evaluation ``mode`` in a metrics.jsonl (a record without a mode counts as
    it), timed in seconds of training: a trial stopped and resumed is not charged for the stop. A log without an
    evaluation is an error naming the file."""
    clocked = training_clock(read_metrics(metrics_log))
    evals = sorted(
        (
            (record, seconds)
            for record, seconds in clocked
            if record.get("kind") == "eval" and "exact_accuracy" in record and record.get("mode", mode) == mode
        ),
        key=lambda pair: int(pair[0]["step"]),
    )
    if not evals:
        raise ValueError(f"{metrics_log}: no evaluation records (kind 'eval' with exact_accuracy)")
    return Curve(
        steps=[int(r["step"]) for r, _ in evals],
        seconds=[seconds for _, seconds in evals],
        val_exact=[float(r["exact_accuracy"]) for r, _ in evals],
    )


def value_at(curve: Curve, seconds: float) -> float:
    """Val exact accuracy at ``seconds``, linear between evaluations and from (0 s, 0) to the first (an untrained
    model solves nothing), the last value after the end."""
    points = [(0.0, 0.0), *zip(curve.seconds, curve.val_exact, strict=True)]
    for (t0, v0), (t1, v1) in itertools.pairwise(points):
        if seconds <= t1:
            return v0 + (v1 - v0) * (seconds - t0) / (t1 - t0) if t1 > t0 else v1
    return curve.final


def time_to_reach(curve: Curve, target: float) -> float | None:
    """Seconds until the curve first reaches ``target`` (linear between evaluations and from (0 s, 0), as
    ``value_at``); None if it never does."""
    points = [(0.0, 0.0), *zip(curve.seconds, curve.val_exact, strict=True)]
    for (t0, v0), (t1, v1) in itertools.pairwise(points):
        if v1 >= target:
            return t1 if v1 == v0 or v0 >= target else t0 + (t1 - t0) * (target - v0) / (v1 - v0)
    return None


class SeedComparison(BaseModel):
    seed: int
    baseline_final: float
    variant_final: float
    baseline_seconds: float
    variant_seconds: float
    baseline_at_variant_end: float = Field(description="the baseline's val exact when the variant had finished")
    baseline_to_target: float | None = None
    variant_to_target: float | None = None


class TimeToAccuracy(BaseModel):
    variant: str
    baseline: str
    target: float = Field(description="val exact accuracy both are timed to: the lower mean final")
    seeds: list[SeedComparison]

    def mean(self, field: str) -> float | None:
        values = [getattr(s, field) for s in self.seeds if getattr(s, field) is not None]
        return statistics.fmean(values) if values else None

    @property
    def wall_time_ratio(self) -> float | None:
        """Baseline's training time over the variant's, at equal steps (>1: the variant is faster)."""
        base, variant = self.mean("baseline_seconds"), self.mean("variant_seconds")
        return base / variant if base and variant else None

    @property
    def time_to_target_ratio(self) -> float | None:
        """Baseline's time to the target over the variant's, over seeds where both reach it."""
        both = [
            (s.baseline_to_target, s.variant_to_target)
            for s in self.seeds
            if s.baseline_to_target is not None and s.variant_to_target
        ]
        if not both:
            return None
        return statistics.fmean(b for b, _ in both) / statistics.fmean(v for _, v in both)


def compare_time_to_accuracy(
    variant: str, baseline: str, variant_curves: dict[int, Curve], baseline_curves: dict[int, Curve]
) -> TimeToAccuracy:
    """Seed-by-seed comparison over the seeds both variants ran."""
    seeds = sorted(variant_curves.keys() & baseline_curves.keys())
    if not seeds:
        raise ValueError(f"{variant} and {baseline}: no seed in common to compare")
    target = min(
        statistics.fmean(variant_curves[s].final for s in seeds),
        statistics.fmean(baseline_curves[s].final for s in seeds),
    )
    compared = []
    for seed in seeds:
        ours, base = variant_curves[seed], baseline_curves[seed]
        compared.append(
            SeedComparison(
                seed=seed,
                baseline_final=base.final,
                variant_final=ours.final,
                baseline_seconds=base.duration,
                variant_seconds=ours.duration,
                baseline_at_variant_end=value_at(base, ours.duration),
                baseline_to_target=time_to_reach(base, target) if target > 0 else None,
                variant_to_target=time_to_reach(ours, target) if target > 0 else None,
            )
        )
    return TimeToAccuracy(variant=variant, baseline=baseline, target=target, seeds=compared)
