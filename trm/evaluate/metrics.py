"""Evaluation metrics of docs/reference.md §4.1, kept as SUMS so that batches and ranks combine by plain addition.

Why sums: a mean of per-batch means is wrong when the last batch is padded or when ranks hold different numbers of
real rows; summing (count, correct, ...) and dividing once at the end is exact however the rows were split.

A row counts only if it has at least one supervised label (labels != -100), exactly like the official loss head:
padding rows of `test_batches` have every label ignored and therefore never enter a metric.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from trm.data.schema import IGNORE_INDEX

METRIC_NAMES = ("count", "accuracy", "exact_accuracy", "q_halt_accuracy", "steps")


def valid_rows(labels: torch.Tensor, example_index: torch.Tensor | None = None) -> torch.Tensor:
    """Bool [B]: rows that carry at least one supervised token (and are not loader padding, when known)."""
    valid = (labels != IGNORE_INDEX).any(dim=-1)
    if example_index is not None:
        valid = valid & (example_index >= 0)
    return valid


def row_correctness(predictions: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row: (token accuracy over supervised tokens as float64 [B], whole-sequence exactly right as bool [B]).

    `predictions` are token ids [B, L] (the argmax of the logits); ignored label positions are not scored.
    """
    supervised = labels != IGNORE_INDEX
    correct = supervised & (predictions.to(labels.dtype) == labels)
    n_supervised = supervised.sum(dim=-1)
    n_correct = correct.sum(dim=-1)
    token_accuracy = n_correct.double() / n_supervised.clamp_min(1).double()
    exact = n_correct == n_supervised
    return token_accuracy, exact


@dataclass
class MetricSums:
    """Running sums over valid rows; `.means()` turns them into the reported metrics."""

    count: float = 0.0
    accuracy: float = 0.0  # sum of per-row token accuracy
    exact_accuracy: float = 0.0  # number of rows exactly right
    q_halt_accuracy: float = 0.0  # number of rows where (q_halt >= 0) == exactly right
    steps: float = 0.0  # sum of supervision steps used per row

    def add(self, other: MetricSums) -> MetricSums:
        for name in METRIC_NAMES:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self

    def as_tensor(self) -> torch.Tensor:
        return torch.tensor([getattr(self, name) for name in METRIC_NAMES], dtype=torch.float64)

    @classmethod
    def from_tensor(cls, values: torch.Tensor) -> MetricSums:
        return cls(**{name: float(v) for name, v in zip(METRIC_NAMES, values.tolist(), strict=True)})

    def means(self) -> dict[str, float]:
        """The reported numbers: fractions over valid rows (0.0 when there were none) plus the row count."""
        n = self.count
        out = {name: (getattr(self, name) / n if n else 0.0) for name in METRIC_NAMES if name != "count"}
        out["count"] = int(n)
        return out


def batch_metric_sums(
    predictions: torch.Tensor,
    labels: torch.Tensor,
    q_halt_logits: torch.Tensor,
    steps: torch.Tensor | int,
    valid: torch.Tensor,
) -> MetricSums:
    """Sums of docs/reference.md §4.1 metrics for one batch, restricted to `valid` rows.

    `steps` is the number of supervision steps each row used (an int when all rows used the same number).
    """
    token_accuracy, exact = row_correctness(predictions, labels)
    q_right = (q_halt_logits >= 0) == exact
    if isinstance(steps, int):
        steps = torch.full_like(token_accuracy, float(steps))
    v = valid.to(torch.float64)
    return MetricSums(
        count=float(v.sum()),
        accuracy=float((token_accuracy * v).sum()),
        exact_accuracy=float((exact.double() * v).sum()),
        q_halt_accuracy=float((q_right.double() * v).sum()),
        steps=float((steps.double() * v).sum()),
    )


@dataclass
class StepCurve:
    """Accuracy after each supervision step k = 1..K (fixed mode): sums per step, for a curve."""

    sums: list[MetricSums] = field(default_factory=list)

    def add(self, step: int, sums: MetricSums) -> None:
        while len(self.sums) < step:
            self.sums.append(MetricSums())
        self.sums[step - 1].add(sums)

    def as_list(self) -> list[dict[str, float]]:
        return [{"step": k + 1, **s.means()} for k, s in enumerate(self.sums)]
