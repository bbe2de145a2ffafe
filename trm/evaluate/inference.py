"""Inference over a test split in two modes, with the metrics of docs/reference.md §4.1.

* ``fixed`` (the official evaluation, docs/reference.md §2.1): a fresh carry per test batch and exactly
  ``halt_max_steps`` model calls; the step-16 prediction and q_halt are scored. The same pass also records the
  accuracy after every supervision step k = 1..16 (the accuracy-vs-steps curve) at no extra model cost.
* ``adaptive``: a row stops at the first step where q_halt > 0 (or at ``halt_max_steps``). Finished rows are
  replaced by the next test rows straight away (continuous batching through the model's own carry reset: a slot
  marked halted is re-initialised with the new batch's row on the next call), so the compute saved by early
  halting turns into puzzles/s instead of idle rows waiting for the slowest row of a batch.

Both run under ``torch.inference_mode`` with the model in eval mode (restored afterwards). With a torch process
group (``world_size > 1``), every rank evaluates its share of ``test_batches`` and the sums are all-reduced, so
every rank returns the same totals.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.distributed as dist

from trm.data.loader import PuzzleDataset, test_batches
from trm.data.schema import IGNORE_INDEX
from trm.evaluate.metrics import MetricSums, StepCurve, batch_metric_sums, valid_rows
from trm.model import TRM

Mode = Literal["fixed", "adaptive"]
MODES: tuple[str, ...] = ("fixed", "adaptive")


@dataclass
class EvalResult:
    """What one evaluation pass measured. Predictions are indexed by the row of the split (all rows after a
    distributed reduction); rows this evaluation did not cover have `predicted[row] == False`."""

    mode: str
    metrics: dict[str, float]  # accuracy, exact_accuracy, q_halt_accuracy, steps (mean), count
    seconds: float
    puzzles_per_second: float
    per_step: list[dict[str, float]] = field(default_factory=list)  # fixed: metrics after step k = 1..max
    halted_at_step: list[int] = field(default_factory=list)  # adaptive: rows that stopped at step k = 1..max
    predictions: torch.Tensor | None = None  # uint8 [N, L] argmax tokens at the scored step
    q_halt_logits: torch.Tensor | None = None  # float32 [N] at the scored step
    steps_used: torch.Tensor | None = None  # int16 [N]
    predicted: torch.Tensor | None = None  # bool [N]

    def summary(self) -> dict[str, Any]:
        """JSON-ready numbers (no tensors)."""
        out: dict[str, Any] = {
            "mode": self.mode,
            **self.metrics,
            "seconds": self.seconds,
            "puzzles_per_second": self.puzzles_per_second,
        }
        if self.per_step:
            out["per_step"] = self.per_step
        if self.halted_at_step:
            out["halted_at_step"] = self.halted_at_step
        return out


def halt_max_steps(model: TRM) -> int:
    """The model's supervision-step budget (ModelConfig.halt_max_steps)."""
    return model.config.halt_max_steps


def effective_batch_size(batch_size: int, rows: int, world_size: int) -> int:
    """The configured global batch, but never more than the split's rows rounded up to a multiple of
    ``world_size``: a small test split (e.g. 200 puzzles at eval.batch_size 512) would otherwise compute mostly
    padding rows, in both modes."""
    if batch_size <= 0 or batch_size % world_size:
        raise ValueError(f"batch size {batch_size} must be a positive multiple of world_size {world_size}")
    needed = max(world_size, -(-rows // world_size) * world_size)
    return min(batch_size, needed)


def evaluate(
    model: TRM,
    dataset: PuzzleDataset,
    batch_size: int,
    mode: Mode = "fixed",
    device: torch.device | str = "cpu",
    rank: int = 0,
    world_size: int = 1,
    collect_predictions: bool = False,
    process_group: dist.ProcessGroup | None = None,
    on_rows_done: Callable[[int], None] | None = None,
) -> EvalResult:
    """Evaluate `model` on every row of `dataset` (`batch_size` is the global batch, split over `world_size`).

    `on_rows_done(n)` is called as this rank finishes n more rows (for a progress bar)."""
    if mode not in MODES:
        raise ValueError(f"unknown evaluation mode {mode!r}; expected one of {MODES}")
    device = torch.device(device)
    batch_size = effective_batch_size(batch_size, len(dataset), world_size)
    recorder = _Recorder(len(dataset), dataset.seq_len, collect_predictions, on_rows_done)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            start = time.perf_counter()
            if mode == "fixed":
                _run_fixed(model, dataset, batch_size, device, rank, world_size, recorder)
            else:
                _run_adaptive(model, dataset, batch_size, device, rank, world_size, recorder)
            seconds = time.perf_counter() - start
    finally:
        model.train(was_training)
    if world_size > 1 and dist.is_available() and dist.is_initialized():
        seconds = recorder.all_reduce(seconds, process_group)
    return recorder.result(mode, seconds)


def warm_up(
    model: TRM,
    dataset: PuzzleDataset,
    batch_size: int,
    device: torch.device | str = "cpu",
    rank: int = 0,
    world_size: int = 1,
) -> None:
    """One untimed model call on the first test batch, so that one-off costs (thread pools, allocator growth,
    kernel selection) do not land in the puzzles/s of whichever mode happens to run first."""
    batch = next(iter(test_batches(dataset, batch_size, rank=rank, world_size=world_size, device=device)), None)
    if batch is None:
        return
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            model(model.initial_carry(batch), batch)
    finally:
        model.train(was_training)


# ---------------------------------------------------------------------------------------------- fixed mode
def _run_fixed(
    model: TRM,
    dataset: PuzzleDataset,
    batch_size: int,
    device: torch.device,
    rank: int,
    world_size: int,
    recorder: _Recorder,
) -> None:
    max_steps = halt_max_steps(model)
    for batch in test_batches(dataset, batch_size, rank=rank, world_size=world_size, device=device):
        valid = valid_rows(batch["labels"], batch["example_index"])
        carry = model.initial_carry(batch)
        for step in range(1, max_steps + 1):
            carry, out = model(carry, batch)
            predictions = out["logits"].argmax(dim=-1)
            sums = batch_metric_sums(predictions, batch["labels"], out["q_halt_logits"], step, valid)
            recorder.curve.add(step, sums)
        recorder.final.add(sums)
        recorder.store(batch["example_index"], valid, predictions, out["q_halt_logits"], step)
        recorder.rows_done(int(valid.sum()))


# ---------------------------------------------------------------------------------------------- adaptive mode
class _RowQueue:
    """This rank's real test rows, in `test_batches` order, handed out a few at a time."""

    def __init__(self, batches: Iterator[dict[str, torch.Tensor]]) -> None:
        self._batches = batches
        self._pending: dict[str, torch.Tensor] | None = None

    def take(self, n: int) -> dict[str, torch.Tensor] | None:
        parts: list[dict[str, torch.Tensor]] = []
        have = 0
        while have < n:
            if self._pending is None or len(self._pending["example_index"]) == 0:
                batch = next(self._batches, None)
                if batch is None:
                    break
                keep = batch["example_index"] >= 0
                self._pending = {k: v[keep] for k, v in batch.items()}
                continue
            chunk = {k: v[: n - have] for k, v in self._pending.items()}
            self._pending = {k: v[n - have :] for k, v in self._pending.items()}
            parts.append(chunk)
            have += len(chunk["example_index"])
        if not parts:
            return None
        return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def _run_adaptive(
    model: TRM,
    dataset: PuzzleDataset,
    batch_size: int,
    device: torch.device,
    rank: int,
    world_size: int,
    recorder: _Recorder,
) -> None:
    max_steps = halt_max_steps(model)
    local = batch_size // world_size
    if local <= 0 or batch_size % world_size:
        raise ValueError(f"batch size {batch_size} must be a positive multiple of world_size {world_size}")
    queue = _RowQueue(test_batches(dataset, batch_size, rank=rank, world_size=world_size, device=device))
    meta = dataset.metadata
    slots = {
        "inputs": torch.full((local, dataset.seq_len), meta.pad_id, dtype=torch.int32, device=device),
        "labels": torch.full((local, dataset.seq_len), IGNORE_INDEX, dtype=torch.int64, device=device),
        "puzzle_identifiers": torch.full((local,), meta.blank_identifier_id, dtype=torch.int32, device=device),
        "example_index": torch.full((local,), -1, dtype=torch.int64, device=device),
    }
    steps = torch.zeros(local, dtype=torch.int64, device=device)
    carry = model.initial_carry(slots)  # every slot halted: the first call loads whatever the slots hold
    free = torch.ones(local, dtype=torch.bool, device=device)
    while True:
        free_idx = free.nonzero().flatten()
        if len(free_idx):
            rows = queue.take(len(free_idx))
            n_new = 0 if rows is None else len(rows["example_index"])
            if rows is not None and n_new:
                fill = free_idx[:n_new]
                for key in slots:
                    slots[key][fill] = rows[key]
                steps[fill] = 0
            idle = free_idx[n_new:]  # nothing left to load: these slots run on as padding
            slots["example_index"][idle] = -1
            slots["labels"][idle] = IGNORE_INDEX
        active = slots["example_index"] >= 0
        if not active.any():
            break
        carry, out = model(carry, slots)
        steps += 1
        q_halt = out["q_halt_logits"]
        done = active & ((q_halt > 0) | (steps >= max_steps))
        if done.any():
            predictions = out["logits"].argmax(dim=-1)
            valid = done & valid_rows(slots["labels"], slots["example_index"])
            recorder.final.add(batch_metric_sums(predictions, slots["labels"], q_halt, steps, valid))
            recorder.count_halts(steps[valid])
            recorder.store(slots["example_index"], valid, predictions, q_halt, steps)
            recorder.rows_done(int(valid.sum()))
        free = done | ~active
        carry.halted = free.clone()


# ---------------------------------------------------------------------------------------------- bookkeeping
class _Recorder:
    """Accumulates metric sums, the per-step curve, halting histogram and (optionally) per-row predictions."""

    def __init__(self, num_rows: int, seq_len: int, collect: bool, on_rows_done=None) -> None:
        self.on_rows_done = on_rows_done
        self.final = MetricSums()
        self.curve = StepCurve()
        self.halts = torch.zeros(0, dtype=torch.float64)
        self.collect = collect
        if collect:
            self.predictions = torch.zeros(num_rows, seq_len, dtype=torch.uint8)
            self.q_halt = torch.zeros(num_rows, dtype=torch.float32)
            self.steps = torch.zeros(num_rows, dtype=torch.int16)
            self.predicted = torch.zeros(num_rows, dtype=torch.bool)

    def rows_done(self, n: int) -> None:
        if self.on_rows_done is not None and n:
            self.on_rows_done(n)

    def count_halts(self, steps: torch.Tensor) -> None:
        counts = torch.bincount(steps.cpu(), minlength=len(self.halts) + 1)[1:].double()
        if len(counts) > len(self.halts):
            self.halts = torch.cat([self.halts, torch.zeros(len(counts) - len(self.halts), dtype=torch.float64)])
        self.halts[: len(counts)] += counts

    def store(self, example_index, valid, predictions, q_halt, steps) -> None:
        if not self.collect:
            return
        rows = example_index[valid].cpu()
        self.predictions[rows] = predictions[valid].to(torch.uint8).cpu()
        self.q_halt[rows] = q_halt[valid].float().cpu()
        self.steps[rows] = (
            (steps[valid] if torch.is_tensor(steps) else torch.full_like(rows, steps)).to(torch.int16).cpu()
        )
        self.predicted[rows] = True

    def all_reduce(self, seconds: float, group) -> float:
        """Sum counts, curve and predictions over ranks (each row is filled by exactly one rank); max of times."""
        num_steps = torch.tensor([len(self.curve.sums), len(self.halts)], dtype=torch.int64)
        dist.all_reduce(num_steps, op=dist.ReduceOp.MAX, group=group)
        while len(self.curve.sums) < int(num_steps[0]):
            self.curve.sums.append(MetricSums())
        if len(self.halts) < int(num_steps[1]):
            self.halts = torch.cat([self.halts, torch.zeros(int(num_steps[1]) - len(self.halts), dtype=torch.float64)])
        packed = torch.cat([self.final.as_tensor(), *[s.as_tensor() for s in self.curve.sums], self.halts])
        dist.all_reduce(packed, group=group)
        width = len(self.final.as_tensor())
        self.final = MetricSums.from_tensor(packed[:width])
        for k in range(len(self.curve.sums)):
            self.curve.sums[k] = MetricSums.from_tensor(packed[width * (k + 1) : width * (k + 2)])
        self.halts = packed[width * (len(self.curve.sums) + 1) :]
        if self.collect:
            # gloo reduces uint8/int32/float32 but not int16/bool: widen, reduce, narrow
            dist.all_reduce(self.predictions, group=group)
            dist.all_reduce(self.q_halt, group=group)
            steps = self.steps.to(torch.int32)
            dist.all_reduce(steps, group=group)
            self.steps = steps.to(torch.int16)
            predicted = self.predicted.to(torch.uint8)
            dist.all_reduce(predicted, group=group)
            self.predicted = predicted.bool()
        elapsed = torch.tensor([seconds], dtype=torch.float64)
        dist.all_reduce(elapsed, op=dist.ReduceOp.MAX, group=group)
        return float(elapsed)

    def result(self, mode: str, seconds: float) -> EvalResult:
        metrics = self.final.means()
        return EvalResult(
            mode=mode,
            metrics=metrics,
            seconds=seconds,
            puzzles_per_second=(metrics["count"] / seconds) if seconds > 0 else 0.0,
            per_step=self.curve.as_list(),
            halted_at_step=[int(x) for x in self.halts.tolist()],
            predictions=self.predictions if self.collect else None,
            q_halt_logits=self.q_halt if self.collect else None,
            steps_used=self.steps if self.collect else None,
            predicted=self.predicted if self.collect else None,
        )
