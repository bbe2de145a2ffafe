"""Calibrating the adaptive strategy's halting rule on the validation split.

One pass of N fixed supervision steps records, per row and step, q_halt, whether that step's answer is exactly right
and for how many steps in a row the answer has stayed the same. Any rule (threshold t, stable m) can then be scored
offline: a row halts at its first step with q_halt > t or an answer unchanged for m steps (m = 0: q_halt only), else
at N, and its answer is that step's. ``calibrate_adaptive`` picks the cheapest rule (fewest mean steps) whose exact
accuracy is at most ``max_drop`` below fixed N steps (0.005 = half a point); (+inf, 0) (never halt early, i.e. fixed
N) is always a candidate, so there always is one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from trm.config import InferenceConfig
from trm.data.loader import PuzzleDataset, test_batches
from trm.evaluate.inference import effective_batch_size
from trm.evaluate.metrics import row_correctness, valid_rows
from trm.evaluate.strategies import start_carry, supervision_step
from trm.model import TRM

QUANTILES = 50  # default candidates: the 0, 1/50, ..., 1 quantiles of the observed q_halt logits
STABLE = (0, 1, 2, 3, 4, 6, 8)  # default candidates for ``stable`` (0 = q_halt alone)


@dataclass
class StepRecord:
    """Per valid row of a split and per step k = 1..N of a fixed pass."""

    q_halt: torch.Tensor  # float32 [rows, N]
    exact: torch.Tensor  # bool [rows, N]
    unchanged: torch.Tensor | None = None  # int32 [rows, N]: steps in a row the answer has stayed the same (0 at 1)

    def first(self, steps: int) -> StepRecord:
        """The record of the first ``steps`` steps (what an N = steps pass would have recorded)."""
        kept = self.unchanged[:, :steps] if self.unchanged is not None else None
        return StepRecord(self.q_halt[:, :steps], self.exact[:, :steps], kept)


@dataclass
class Calibration:
    strategy: InferenceConfig  # adaptive, with the chosen threshold (and the steps it was calibrated for)
    fixed_exact_accuracy: float  # fixed N steps on the validation split
    max_drop: float
    table: list[dict[str, float]] = field(default_factory=list)  # threshold, stable, exact_accuracy, mean_steps

    def summary(self) -> dict[str, Any]:
        """JSON-ready (an infinite threshold is written as the string 'inf')."""
        return {
            "strategy": self.strategy.label(),
            "halt_threshold": _json_float(self.strategy.halt_threshold),
            "stable": self.strategy.stable,
            "fixed_exact_accuracy": self.fixed_exact_accuracy,
            "max_drop": self.max_drop,
            "table": [{**row, "threshold": _json_float(row["threshold"])} for row in self.table],
        }


def _json_float(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)


def record_steps(
    model: TRM, dataset: PuzzleDataset, batch_size: int, steps: int, device: torch.device | str = "cpu"
) -> StepRecord:
    """q_halt, exactness and the answer's unchanged run after every step of an N-step fixed pass over the valid rows
    of ``dataset``."""
    q_parts, exact_parts, same_parts = [], [], []
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for batch in test_batches(dataset, effective_batch_size(batch_size, len(dataset), 1), device=device):
                valid = valid_rows(batch["labels"], batch["example_index"])
                labels = batch["labels"][valid]
                carry = start_carry(model, batch["inputs"][valid], batch["puzzle_identifiers"][valid])
                q_steps, exact_steps, same_steps = [], [], []
                previous, run = None, torch.zeros(len(labels), dtype=torch.int32)
                for _ in range(steps):
                    carry, out = supervision_step(model, carry)
                    answers = out["logits"].argmax(dim=-1)
                    if previous is not None:
                        same = (answers == previous).all(dim=-1).cpu()
                        run = torch.where(same, run + 1, torch.zeros_like(run))
                    previous = answers
                    q_steps.append(out["q_halt_logits"].float().cpu())
                    exact_steps.append(row_correctness(answers, labels)[1].cpu())
                    same_steps.append(run)
                q_parts.append(torch.stack(q_steps, dim=1))
                exact_parts.append(torch.stack(exact_steps, dim=1))
                same_parts.append(torch.stack(same_steps, dim=1))
    finally:
        model.train(was_training)
    if not q_parts:
        empty = torch.zeros(0, steps)
        return StepRecord(empty, empty.bool(), empty.int())
    return StepRecord(torch.cat(q_parts), torch.cat(exact_parts), torch.cat(same_parts))


def adaptive_offline(record: StepRecord, threshold: float, stable: int = 0) -> tuple[float, float]:
    """(exact accuracy, mean steps) the adaptive strategy at (``threshold``, ``stable``) would get on the recorded
    rows."""
    rows, steps = record.q_halt.shape
    if rows == 0:
        return 0.0, 0.0
    fires = record.q_halt > threshold
    if stable > 0:
        if record.unchanged is None:
            raise ValueError("this record has no answer runs (StepRecord.unchanged); stable needs them")
        fires |= record.unchanged >= stable
    halt = torch.where(fires.any(dim=1), fires.int().argmax(dim=1), torch.full((rows,), steps - 1))
    exact = record.exact[torch.arange(rows), halt]
    return float(exact.double().mean()), float((halt + 1).double().mean())


def default_thresholds(record: StepRecord) -> list[float]:
    """Sorted unique quantiles of the observed q_halt logits, plus 0.0 and +inf."""
    observed = record.q_halt.flatten().double().numpy()
    grid = np.quantile(observed, np.linspace(0.0, 1.0, QUANTILES + 1)).tolist() if observed.size else []
    return sorted({*grid, 0.0, math.inf})


def calibrate_adaptive(
    model: TRM,
    val_dataset: PuzzleDataset,
    batch_size: int,
    steps: int | None = None,
    max_drop: float = 0.005,
    thresholds: Sequence[float] | None = None,
    device: torch.device | str = "cpu",
    stables: Sequence[int] = STABLE,
) -> Calibration:
    """The cheapest adaptive rule (threshold, stable) whose validation exact accuracy is within ``max_drop`` (a
    fraction) of fixed ``steps`` (default halt_max_steps); ties in mean steps go to the higher accuracy, then the
    higher threshold, then the larger stable."""
    if not 0 <= max_drop <= 1:
        raise ValueError(f"max_drop {max_drop} must be a fraction in [0, 1] (0.005 = half a point)")
    if len(val_dataset) == 0:
        raise ValueError(f"{val_dataset.path}: split {val_dataset.split!r} is empty; nothing to calibrate on")
    n = steps if steps is not None else model.config.halt_max_steps
    record = record_steps(model, val_dataset, batch_size, n, device)
    return choose_threshold(record, max_drop, thresholds, steps, stables)


def choose_threshold(
    record: StepRecord,
    max_drop: float = 0.005,
    thresholds: Sequence[float] | None = None,
    steps: int | None = None,
    stables: Sequence[int] = STABLE,
) -> Calibration:
    """The selection of ``calibrate_adaptive`` on a recorded pass (``steps`` is copied into the chosen config).
    Without ``record.unchanged`` only stable = 0 is tried."""
    fixed_accuracy = adaptive_offline(record, math.inf)[0]
    candidates = sorted({*(thresholds if thresholds is not None else default_thresholds(record)), math.inf})
    runs = sorted({0, *stables}) if record.unchanged is not None else [0]
    table = []
    for stable in runs:
        for threshold in candidates:
            accuracy, mean_steps = adaptive_offline(record, threshold, stable)
            row = {"threshold": threshold, "stable": stable, "exact_accuracy": accuracy, "mean_steps": mean_steps}
            table.append(row)
    allowed = [row for row in table if row["exact_accuracy"] >= fixed_accuracy - max_drop - 1e-12]
    best = min(allowed, key=lambda row: (row["mean_steps"], -row["exact_accuracy"], -row["threshold"], -row["stable"]))
    chosen = InferenceConfig(
        strategy="adaptive", steps=steps, halt_threshold=best["threshold"], stable=int(best["stable"])
    )
    return Calibration(strategy=chosen, fixed_exact_accuracy=fixed_accuracy, max_drop=max_drop, table=table)
