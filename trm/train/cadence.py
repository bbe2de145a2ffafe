"""When a training run logs, evaluates and checkpoints: the step numbers, computed once from the config.

One home for the interval arithmetic, so that a local run, every Ray Train worker and Tune's ASHA budget agree on
which steps evaluate and checkpoint (intervals may be given in epochs; a step count is derived from the sampler).
"""

from __future__ import annotations

from dataclasses import dataclass

from trm.config import TrainConfig
from trm.data.sampler import epoch_steps


def step_budget(train: TrainConfig, num_groups: int, mean_puzzle_examples: float) -> int:
    """Optimizer steps of the run on a training split of ``num_groups`` groups: ``max_steps``, else the epoch budget
    of docs/reference.md §2.5, truncated as officially."""
    if train.max_steps is not None:
        return train.max_steps
    assert train.epochs is not None  # TrainConfig requires one of the two
    return int(epoch_steps(train.epochs, num_groups, mean_puzzle_examples, train.global_batch_size))


def interval_steps(value: float | None, unit: str, steps_per_epoch: float) -> int | None:
    """An interval in optimizer steps (at least 1); None stays None (= only at the end)."""
    if value is None:
        return None
    steps = value * steps_per_epoch if unit == "epochs" else value
    return max(1, round(steps))


@dataclass(frozen=True)
class Cadence:
    """Which steps log, evaluate and checkpoint. The last step always checkpoints, and evaluates when
    ``evaluate_at_end`` (the default); intervals are counted from step 0, so a resumed run keeps the same steps."""

    total_steps: int
    log_every: int = 1
    eval_every: int | None = None
    checkpoint_every: int | None = None
    evaluate_at_end: bool = True

    @classmethod
    def for_run(
        cls, train: TrainConfig, total_steps: int, steps_per_epoch: float, evaluate_at_end: bool = True
    ) -> Cadence:
        return cls(
            total_steps=total_steps,
            log_every=train.log_interval,
            eval_every=interval_steps(train.eval_interval, train.interval_unit, steps_per_epoch),
            checkpoint_every=interval_steps(train.checkpoint_interval, train.interval_unit, steps_per_epoch),
            evaluate_at_end=evaluate_at_end,
        )

    def logs(self, step: int) -> bool:
        return step % self.log_every == 0 or step == self.total_steps

    def evaluates(self, step: int) -> bool:
        periodic = self.eval_every is not None and step % self.eval_every == 0
        return periodic or (step == self.total_steps and self.evaluate_at_end)

    def checkpoints(self, step: int) -> bool:
        return step == self.total_steps or (self.checkpoint_every is not None and step % self.checkpoint_every == 0)

    def report_steps(self, after: int = 0) -> list[int]:
        """Steps after ``after`` that evaluate or checkpoint, i.e. that a Ray report is made at (ASHA's budget)."""
        marks = {self.total_steps}
        for every in (self.eval_every, self.checkpoint_every):
            if every is not None:
                marks.update(range(every, self.total_steps + 1, every))
        return sorted(step for step in marks if step > after)
