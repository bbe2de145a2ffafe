"""The evaluation hook of the training loop: evaluate a run's EMA weights on its dataset's eval split in every
configured mode (ARC: also voting and pass@K), optionally writing ``eval/step_<N>/eval.json`` per evaluation.

It lives here, above trm.train, so that the loop knows nothing of evaluation: `trm train`, Ray Train workers and
Tune trials construct it and hand it to ``trm.train.loop.train``.
"""

from __future__ import annotations

from pathlib import Path

import torch.distributed as dist

from trm.config import TRMConfig
from trm.data.loader import PuzzleDataset
from trm.evaluate.arc import ArcEvaluator
from trm.evaluate.report import arc_evaluator, bounded, build_report, evaluate_modes, write_report
from trm.model import TRM
from trm.train.checkpoint import FolderCheckpoints
from trm.train.hooks import EvalSummaries
from trm.train.loop import LoopHooks
from trm.train.trainer import Trainer


class TrainingEvaluator:
    """Callable ``(trainer) -> {mode: summary}``; collective under a process group (every rank evaluates its share
    and gets the totals). The eval split and the evaluation model are opened once, on the first call."""

    def __init__(self, out_dir: Path | None = None) -> None:
        self.out_dir = out_dir
        self._dataset: PuzzleDataset | None = None
        self._model: TRM | None = None
        self._arc: ArcEvaluator | None = None

    @classmethod
    def for_run(cls, config: TRMConfig, write_reports: bool = True) -> TrainingEvaluator | None:
        """The evaluator a run's config asks for (None when ``eval.modes`` is empty); reports go to the run folder."""
        if not config.eval.modes:
            return None
        return cls(config.run.path() / "eval" if write_reports else None)

    def _open(self, trainer: Trainer) -> PuzzleDataset:
        if self._dataset is None:
            split = PuzzleDataset.open(trainer.dataset.path, trainer.config.eval.split)
            self._dataset = bounded(split, trainer.config)
            self._arc = arc_evaluator(self._dataset)
        return self._dataset

    def __call__(self, trainer: Trainer) -> EvalSummaries:
        dataset = self._open(trainer)
        self._model = trainer.ema_model(into=self._model)
        results, arc_result = evaluate_modes(
            self._model,
            dataset,
            trainer.config.eval.batch_size,
            modes=trainer.config.eval.modes,
            device=trainer.device,
            arc=self._arc,
            rank=trainer.rank,
            world_size=trainer.world_size,
            process_group=trainer.process_group,
        )
        summaries = {mode: result.summary() for mode, result in results.items()}
        if self._arc is not None:
            pass_at = shared_from_rank0(arc_result.pass_at if arc_result is not None else None, trainer)
            for summary in summaries.values():
                summary.update({f"ARC/pass@{k}": value for k, value in pass_at.items()})
        if self.out_dir is not None and trainer.rank == 0:
            report = build_report(
                results,
                arc_result,
                step=trainer.step_count,
                dataset=str(dataset.path),
                split=dataset.split,
                weights="ema" if trainer.ema is not None else "live",
            )
            write_report(report, self.out_dir / f"step_{trainer.step_count}", arc_result)
        return summaries


def shared_from_rank0(value: dict[int, float] | None, trainer: Trainer) -> dict[int, float]:
    """Rank 0's ARC scores on every rank: only rank 0 votes, but every rank selects checkpoints and decides early
    stopping from the same summary, so the ranks must agree on it."""
    if trainer.world_size == 1:
        assert value is not None
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0, group=trainer.process_group)
    assert box[0] is not None
    return box[0]


def local_run_hooks(config: TRMConfig, resume: bool = False) -> LoopHooks:
    """The hooks of a single-process run (`trm train`, benchmarks): checkpoints in the run folder, periodic
    evaluation with eval.json reports when the config has eval modes."""
    return LoopHooks(
        checkpoints=FolderCheckpoints(config.run.path(), resume), evaluate=TrainingEvaluator.for_run(config)
    )
