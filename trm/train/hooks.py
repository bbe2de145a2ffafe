"""What the training loop hands to the outside world, and the hooks through which it does so.

The loop decides *when* (trm/train/cadence.py); hooks decide *how*: evaluation is given to the loop by the floor
above (trm.evaluate), and checkpoints/reports go to a folder for a local run or to Ray for a Ray Train worker.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from trm.train.trainer import Trainer

EvalSummaries = dict[str, dict[str, Any]]  # eval mode ("fixed", "adaptive") -> JSON-ready summary


@dataclass(frozen=True)
class Report:
    """The state of a run at a step that evaluated or checkpoints: what Ray, Tune and early stopping see."""

    step: int
    total_steps: int
    train: dict[str, float]  # metrics of this step's optimizer update
    evals: EvalSummaries = field(default_factory=dict)  # the latest evaluation ({} before the first one)
    eval_step: int | None = None  # the step that evaluation was made at
    steps_per_second: float = 0.0  # since the previous report
    samples_per_second: float = 0.0
    world_size: int = 1
    restored_from_step: int | None = None  # this attempt started from a checkpoint at that step
    best_step: int | None = None  # the run's selected (best validation) step so far

    @property
    def evaluated_now(self) -> bool:
        return self.eval_step == self.step


class Evaluator(Protocol):
    """Evaluate the trainer's current (EMA) weights. Collective under a process group: every rank calls it and
    gets the same summaries."""

    def __call__(self, trainer: Trainer) -> EvalSummaries: ...


class Checkpoints(Protocol):
    """Where a run's checkpoints and reports go."""

    def restore(self, trainer: Trainer) -> int | None:
        """Load the checkpoint to continue from, if any; returns its step."""
        ...

    def save(self, trainer: Trainer, report: Report) -> str | None:
        """Checkpoint the trainer (collective: every rank calls it) with ``report``; returns where it went."""
        ...

    def report(self, report: Report) -> None:
        """Publish a report that comes without a checkpoint (an evaluation between checkpoints)."""
        ...


StopRule = Callable[[Report], bool]  # True = end the run after this report (e.g. early stopping)
