"""The one training loop, used by `trm train`, every Ray Train worker and every Tune trial: step a Trainer to its
budget and, at the steps its Cadence names, log, evaluate, checkpoint and report through hooks.

Run folder (``run.output_dir/run.name``), written by rank 0::

    config.json            the resolved config (dataset sizes filled in)
    metrics.jsonl          one JSON object per line: kind "info" (step 0), "train" (every log_interval), "eval",
                           "resume" (where a resumed run began again)
    checkpoints/step_<N>/  state.safetensors + state.json (local runs; Ray keeps its own in its storage)
    eval/step_<N>/         eval.json (+ submission.json on ARC) of each evaluation (validation split)
    selection.json         which step is handed on and why (eval.select: best validation score, or last)
    export/                model.safetensors (EMA weights of the selected step) + config.json: what evaluation
                           and the store load
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist

from trm.atomic import atomic_write_json
from trm.config import TRMConfig
from trm.data.build import ensure_built
from trm.data.loader import PuzzleDataset
from trm.model import count_trainable_parameters
from trm.train.cadence import Cadence
from trm.train.checkpoint import FolderCheckpoints, checkpoint_dir
from trm.train.export import export_model, load_exported
from trm.train.hooks import Checkpoints, EvalSummaries, Evaluator, Report, StopRule
from trm.train.metrics_log import MetricsLog
from trm.train.progress import TrainingProgress
from trm.train.selection import Selection, Selector
from trm.train.trainer import Trainer, torch_threads


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    total_steps: int
    seconds: float
    last_train: dict[str, float] = field(default_factory=dict)
    last_eval: EvalSummaries = field(default_factory=dict)
    eval_step: int | None = None
    export_dir: Path | None = None
    checkpoint: str | None = None
    restored_from_step: int | None = None
    stopped_early: bool = False
    selection: Selection | None = None  # the step handed on (export, publish) and why


@dataclass
class LoopHooks:
    """How the loop reaches the outside world (see trm/train/hooks.py)."""

    checkpoints: Checkpoints
    evaluate: Evaluator | None = None
    should_stop: StopRule | None = None


class _Rate:
    """Optimizer steps per second since the last ``take``."""

    def __init__(self) -> None:
        self.started, self.steps = time.perf_counter(), 0

    def tick(self) -> None:
        self.steps += 1

    def take(self) -> float:
        rate = self.steps / max(time.perf_counter() - self.started, 1e-9)
        self.started, self.steps = time.perf_counter(), 0
        return rate


def prepare_dataset(config: TRMConfig, process_group: dist.ProcessGroup | None, builds_here: bool) -> Path:
    """The dataset folder; a missing registered dataset is built (from params.yaml) by the ranks told to, while the
    others wait at a barrier."""
    path = config.data.resolve_path()
    if builds_here:
        ensure_built(path, config.data.name)
    if process_group is not None:
        dist.barrier(group=process_group)
    return path


def check_eval_split(data_path: Path, split: str) -> None:
    """Before the first step, not at the first evaluation: a dataset built before validation splits existed has
    no ``val.parquet``."""
    if not (data_path / f"{split}.parquet").is_file():
        raise FileNotFoundError(
            f"{data_path}: no {split!r} split to evaluate and select on (built before validation splits existed? "
            f"rebuild it: `dvc repro {data_path.name}` or `trm data build {data_path.name}`)"
        )


def train(
    config: TRMConfig,
    *,
    hooks: LoopHooks | None = None,
    resume: bool = False,
    process_group: dist.ProcessGroup | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
    export: bool = True,
    builds_data: bool | None = None,
) -> TrainResult:
    """Train ``config`` to its step budget in ``config.run.path()``. Without ``hooks``, checkpoints go to the run
    folder (``resume`` continues from the latest one there, bit-exactly on CPU) and nothing is evaluated: pass
    ``LoopHooks(evaluate=...)`` from trm.evaluate for periodic evaluation. ``builds_data``: whether this process
    builds a missing dataset (default: rank 0)."""
    started = time.perf_counter()
    with torch_threads(config.train.threads):
        rank = dist.get_rank(process_group) if process_group is not None else 0
        data_path = prepare_dataset(config, process_group, rank == 0 if builds_data is None else builds_data)
        trainer = Trainer(config, PuzzleDataset.open(data_path, "train"), process_group=process_group, device=device)
        hooks = hooks or LoopHooks(checkpoints=FolderCheckpoints(config.run.path(), resume))
        if hooks.evaluate is not None:
            check_eval_split(data_path, config.eval.split)
        run_dir = config.run.path()
        restored_from = hooks.checkpoints.restore(trainer)
        log = _open_log(trainer, run_dir, restored_from)
        cadence = Cadence.for_run(trainer.config.train, trainer.total_steps, trainer.steps_per_epoch)
        with TrainingProgress(progress and trainer.rank == 0, trainer.total_steps, trainer.step_count) as bar:
            result = run_loop(trainer, cadence, log, hooks, bar, run_dir, restored_from)
        if export and trainer.rank == 0:
            result.export_dir = export_selected(trainer, result.selection, run_dir)
    result.seconds = time.perf_counter() - started
    return result


def export_selected(trainer: Trainer, selection: Selection | None, run_dir: Path) -> Path:
    """``run_dir/export``: the EMA weights of the selected step; the trainer's own when it is the current step,
    else those of the run folder's checkpoint of that step (a new best is always checkpointed)."""
    step = selection.step if selection is not None else None
    if step is None or step == trainer.step_count:
        return export_model(trainer.ema_model(), trainer.config, run_dir / "export")
    folder = checkpoint_dir(run_dir, step)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: the checkpoint of the selected step {step} is missing")
    model, config = load_exported(folder)
    return export_model(model, config, run_dir / "export")


def _open_log(trainer: Trainer, run_dir: Path, restored_from: int | None) -> MetricsLog:
    """Rank 0's metrics log (continued on resume) and the resolved config beside it."""
    log = MetricsLog(run_dir / "metrics.jsonl", enabled=trainer.rank == 0)
    log.start(restored_from)
    if trainer.rank == 0:
        atomic_write_json(run_dir / "config.json", trainer.config.model_dump(mode="json"))
    if trainer.step_count == 0:
        log.write(
            "info",
            0,
            {
                "num_params": count_trainable_parameters(trainer.model),
                "total_steps": trainer.total_steps,
                "world_size": trainer.world_size,
            },
        )
    return log


def run_loop(
    trainer: Trainer,
    cadence: Cadence,
    log: MetricsLog,
    hooks: LoopHooks,
    bar: TrainingProgress,
    run_dir: Path,
    restored_from: int | None = None,
) -> TrainResult:
    """Step to ``cadence.total_steps``; at each step the cadence names: log, evaluate, checkpoint or report, and
    ask ``hooks.should_stop`` and the selector's patience. A new best evaluation is always checkpointed (when the
    run selects its best step). A run resumed after its last step only evaluates once more and reports."""
    result = TrainResult(run_dir, trainer.step_count, cadence.total_steps, 0.0, restored_from_step=restored_from)
    selector = Selector(trainer.config.eval)
    selector.load(trainer.loop_state.get("selection", {}))
    if trainer.step_count >= cadence.total_steps or selector.exhausted():
        result.stopped_early = selector.stopped_early
        _report_finished_run(trainer, cadence, hooks, result)
    else:
        log_rate, report_rate = _Rate(), _Rate()
        while trainer.step_count < cadence.total_steps:
            metrics = trainer.step()
            step = result.steps = trainer.step_count
            result.last_train = metrics
            log_rate.tick()
            report_rate.tick()
            if cadence.logs(step):
                log.write("train", step, {**metrics, "steps_per_second": log_rate.take()})
                bar.update(step, f"loss {metrics['lm_loss']:.3f} exact {metrics['exact_accuracy']:.2f}")
            else:
                bar.update(step)
            if _after_step(trainer, cadence, hooks, selector, (log, bar), result, report_rate):
                result.stopped_early = True
                break
    result.selection = selector.selection(trainer.step_count)
    if trainer.rank == 0:
        atomic_write_json(run_dir / "selection.json", result.selection.model_dump(mode="json"))
    return result


def _after_step(
    trainer: Trainer,
    cadence: Cadence,
    hooks: LoopHooks,
    selector: Selector,
    outputs: tuple[MetricsLog, TrainingProgress],
    result: TrainResult,
    report_rate: _Rate,
) -> bool:
    """Evaluate, checkpoint and report as this step asks; True when the run should stop here."""
    step = trainer.step_count
    evaluated = hooks.evaluate is not None and cadence.evaluates(step)
    improved = False
    if evaluated:
        _evaluate(trainer, hooks, *outputs, result)
        improved = selector.observe(step, result.last_eval)
    saving = cadence.checkpoints(step) or selector.wants_checkpoint(improved)
    if not (evaluated or saving):
        return False
    trainer.loop_state["selection"] = selector.state()
    report = _report(trainer, result, report_rate.take(), selector.best_step)
    stop = (hooks.should_stop is not None and hooks.should_stop(report)) or selector.exhausted()
    if saving or stop:
        result.checkpoint = hooks.checkpoints.save(trainer, report) or result.checkpoint
    else:
        hooks.checkpoints.report(report)
    return stop


def _evaluate(trainer: Trainer, hooks: LoopHooks, log: MetricsLog, bar: TrainingProgress, result: TrainResult) -> None:
    assert hooks.evaluate is not None
    result.last_eval = hooks.evaluate(trainer)
    result.eval_step = trainer.step_count
    for mode, summary in result.last_eval.items():
        log.write("eval", trainer.step_count, {"mode": mode, **summary})
        bar.print(
            f"step {trainer.step_count} eval[{mode}] exact {summary['exact_accuracy']:.4f} "
            f"token {summary['accuracy']:.4f}"
        )


def _report(trainer: Trainer, result: TrainResult, steps_per_second: float, best_step: int | None = None) -> Report:
    return Report(
        step=trainer.step_count,
        total_steps=result.total_steps,
        train=result.last_train,
        evals=result.last_eval,
        eval_step=result.eval_step,
        steps_per_second=steps_per_second,
        samples_per_second=steps_per_second * trainer.config.train.global_batch_size,
        world_size=trainer.world_size,
        restored_from_step=result.restored_from_step,
        best_step=best_step,
    )


def _report_finished_run(trainer: Trainer, cadence: Cadence, hooks: LoopHooks, result: TrainResult) -> None:
    """A resume of a run that had already reached its budget: its final evaluation once more (not logged again:
    the log has it), reported so that the caller still gets the run's metrics."""
    if hooks.evaluate is not None and cadence.evaluate_at_end:
        result.last_eval = hooks.evaluate(trainer)
        result.eval_step = trainer.step_count
    hooks.checkpoints.report(_report(trainer, result, 0.0))
