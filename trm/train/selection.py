"""Which checkpoint a run hands on, and when it may stop early: decided on the validation split only.

One home for "best", so that a local run, every Ray Train worker and every Tune trial agree: the score is
``eval.metric`` of the first evaluation mode, higher is better, and a later evaluation wins only by improving on it
(exact ties keep the earlier step, which trained less). The test split never reaches this module.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel

from trm.config import EvalConfig
from trm.train.hooks import EvalSummaries, Report


class Selection(BaseModel):
    """The record of a run's choice, as manifests, model cards and ``selection.json`` show it."""

    rule: Literal["best", "last"]
    split: str
    metric: str  # "<mode>/<key>", e.g. "fixed/exact_accuracy"
    step: int | None  # the selected step (None: nothing was evaluated and the rule was "best")
    value: float | None  # the selection metric at that step
    metrics: dict[str, float]  # every "<mode>/<key>" of the selected step's evaluation
    evaluations: int  # how many evaluations the choice was made among
    stopped_early: bool = False


# Early in a run every evaluation is often at 0 exact accuracy; token accuracy breaks such ties, with a weight too
# small to outrank one more exactly solved puzzle in a split of fewer than 1000 puzzles.
TIE_BREAK_WEIGHT = 1e-3


def score_of(evals: EvalSummaries, metric: str) -> float:
    """``metric`` of the first mode's summary plus the token-accuracy tie-break; NaN when there is no evaluation
    or the key is missing."""
    if not evals:
        return math.nan
    first = next(iter(evals.values()))
    value = first.get(metric)
    if not isinstance(value, (int, float)):
        return math.nan
    tie_break = first.get("accuracy", 0.0) if metric != "accuracy" else 0.0
    return float(value) + TIE_BREAK_WEIGHT * float(tie_break)


TIMING_KEYS = frozenset({"seconds", "puzzles_per_second"})  # vary run to run: not part of a reproducible record


def flat_metrics(evals: EvalSummaries) -> dict[str, float]:
    """``{"<mode>/<key>": value}`` of the numeric, deterministic entries of every mode's summary."""
    return {
        f"{mode}/{key}": float(value)
        for mode, summary in evals.items()
        for key, value in summary.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool) and key not in TIMING_KEYS
    }


class Selector:
    """Follows a run's evaluations: whether the latest one improved, whether patience ran out, and the choice."""

    def __init__(self, config: EvalConfig) -> None:
        self.config = config
        self.best_value = -math.inf
        self.best_step: int | None = None
        self.best_metrics: dict[str, float] = {}
        self.last_step: int | None = None
        self.last_metrics: dict[str, float] = {}
        self.evaluations = 0
        self.since_best = 0
        self.stopped_early = False

    _STATE = ("best_value", "best_step", "best_metrics", "last_step", "last_metrics", "evaluations", "since_best")

    def state(self) -> dict[str, Any]:
        """JSON state, kept in every checkpoint so that a resumed run remembers its best evaluation."""
        state = {key: getattr(self, key) for key in self._STATE}
        state["best_value"] = None if math.isinf(self.best_value) else self.best_value
        return state

    def load(self, state: dict[str, Any]) -> None:
        for key in self._STATE:
            if key in state:
                setattr(self, key, state[key])
        if self.best_value is None:
            self.best_value = -math.inf

    @property
    def mode_label(self) -> str:
        return f"{self.config.modes[0]}/{self.config.metric}" if self.config.modes else self.config.metric

    def observe(self, step: int, evals: EvalSummaries) -> bool:
        """Record the evaluation made at ``step``; True when it is the new best."""
        score = score_of(evals, self.config.metric)
        if math.isnan(score):
            known = sorted(next(iter(evals.values()), {}))
            raise ValueError(f"eval.metric {self.config.metric!r} is not in the evaluation summary (has: {known})")
        self.evaluations += 1
        self.last_step, self.last_metrics = step, flat_metrics(evals)
        if score > self.best_value:
            self.best_value, self.best_step, self.best_metrics = score, step, self.last_metrics
            self.since_best = 0
            return True
        self.since_best += 1
        return False

    def exhausted(self) -> bool:
        """Early stopping: ``eval.patience`` evaluations in a row without improvement."""
        patience = self.config.patience
        if patience is not None and self.since_best >= patience:
            self.stopped_early = True
        return self.stopped_early

    def wants_checkpoint(self, improved: bool) -> bool:
        """A new best must be kept as a checkpoint, whatever the checkpoint interval says."""
        return improved and self.config.select == "best"

    def selection(self, final_step: int) -> Selection:
        best = self.config.select == "best"
        step = self.best_step if best else final_step
        metrics = self.best_metrics if best else (self.last_metrics if self.last_step == final_step else {})
        return Selection(
            rule=self.config.select,
            split=self.config.split,
            metric=self.mode_label,
            step=step,
            value=metrics.get(self.mode_label),
            metrics=metrics,
            evaluations=self.evaluations,
            stopped_early=self.stopped_early,
        )


def checkpoint_score(report: Report, metric: str) -> float:
    """The score a checkpoint is kept and ranked by (Ray Train's ``checkpoint_score_attribute``): its own step's
    validation ``metric``. A checkpoint saved between evaluations scores NaN (ranked below all), so stale scores
    never make newer weights look best. Any step but the selected one scores a hair (one float step) lower: Ray
    keeps the later of two equal scores and deletes the earlier, while a tie here keeps the earlier step."""
    if not report.evaluated_now:
        return math.nan
    score = score_of(report.evals, metric)
    return score if report.best_step in (None, report.step) else math.nextafter(score, -math.inf)
