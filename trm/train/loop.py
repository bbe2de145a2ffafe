"""The training loop around a Trainer: dataset build-if-missing, periodic evaluation with EMA weights, metrics
log, rich progress, checkpoints, resume and the final export.

Run folder (``run.output_dir/run.name``)::

    config.json            the resolved config (dataset sizes filled in)
    metrics.jsonl          one JSON object per line: kind "train" (every log_interval steps) or "eval"
    checkpoints/step_<N>/  state.safetensors + state.json (full resumable state)
    eval/step_<N>/         eval.json (+ submission.json on ARC) of each evaluation
    export/                model.safetensors (EMA weights) + config.json: what evaluation and the store load
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from trm.config import TRMConfig
from trm.data.loader import PuzzleDataset
from trm.train.checkpoint import checkpoint_dir, latest_checkpoint, load_trainer, save_trainer
from trm.train.export import export_model
from trm.train.metrics_log import MetricsLog
from trm.train.trainer import Trainer, torch_threads


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    seconds: float
    last_train: dict[str, float] = field(default_factory=dict)
    last_eval: dict[str, dict[str, Any]] = field(default_factory=dict)  # mode -> EvalResult.summary()
    export_dir: Path | None = None
    checkpoint: Path | None = None


def ensure_dataset(config: TRMConfig, process_group: dist.ProcessGroup | None = None) -> Path:
    """The dataset folder; builds a registered dataset (with ``data.build`` overrides) when it is missing. With a
    process group, rank 0 builds and the others wait."""
    path = config.data.resolve_path()
    rank = dist.get_rank(process_group) if process_group is not None else 0
    if rank == 0 and not (path / "metadata.json").is_file():
        from trm.data.build import dataset_names, build_dataset

        if config.data.name not in dataset_names():
            raise FileNotFoundError(
                f"dataset {config.data.name!r}: no built dataset at {path} and not a registered name "
                f"({', '.join(dataset_names())})"
            )
        build_dataset(config.data.name, dict(config.data.build), out_root=path.parent, progress=True)
    if process_group is not None:
        dist.barrier(group=process_group)
    _check_build_params(path, config.data.build)
    return path


def _check_build_params(path: Path, wanted: dict[str, Any]) -> None:
    """An existing build made with other parameters than ``data.build`` asks for is an error, not a silent swap
    (e.g. an augmented 4x4 set whose augmentations reproduce test puzzles, where the preset wants none)."""
    if not wanted:
        return
    params = json.loads((path / "metadata.json").read_text()).get("params", {})
    for key, value in wanted.items():
        node: Any = params
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node != value:
            raise ValueError(
                f"{path}: built with {key}={node!r} but data.build asks for {key}={value!r}; rebuild it "
                f"(trm data build {path.name} --set {key}={value}) or point data.root elsewhere"
            )


def _interval_steps(value: float | None, unit: str, steps_per_epoch: float) -> int | None:
    if value is None:
        return None
    steps = value * steps_per_epoch if unit == "epochs" else value
    return max(1, int(round(steps)))


class _Progress:
    """A rich progress bar on rank 0 (a no-op elsewhere or when disabled)."""

    def __init__(self, enabled: bool, total: int, done: int) -> None:
        self.bar = None
        if not enabled:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            TimeRemainingColumn(), TextColumn("{task.fields[info]}"))
        self.bar.start()
        self.task = self.bar.add_task("train", total=total, completed=done, info="")

    def update(self, step: int, info: str | None = None) -> None:
        if self.bar is not None:
            kwargs = {"info": info} if info is not None else {}
            self.bar.update(self.task, completed=step, **kwargs)

    def print(self, text: str) -> None:
        if self.bar is not None:
            self.bar.console.print(text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def run_evaluation(trainer: Trainer, eval_model, eval_ds: PuzzleDataset, out_dir: Path | None = None,
                   arc=None) -> dict[str, dict[str, Any]]:
    """Evaluate the EMA weights in every configured mode (H6's ``evaluate_modes``); on ARC also pass@K, with
    ``eval.json`` + ``submission.json`` written to ``out_dir`` by rank 0. Collective when distributed."""
    from trm.evaluate.report import build_report, evaluate_modes, write_report

    trainer.ema_model(into=eval_model)
    results, arc_result = evaluate_modes(
        eval_model, eval_ds, trainer.config.eval.batch_size, modes=trainer.config.eval.modes, device=trainer.device,
        arc=arc, rank=trainer.rank, world_size=trainer.world_size, process_group=trainer.process_group,
    )
    summaries = {mode: result.summary() for mode, result in results.items()}
    if arc_result is not None:
        for k, value in arc_result.pass_at.items():
            for summary in summaries.values():
                summary[f"ARC/pass@{k}"] = value
    if out_dir is not None and trainer.rank == 0:
        report = build_report(results, arc_result, step=trainer.step_count, dataset=str(eval_ds.path),
                              split=eval_ds.split, weights="ema" if trainer.ema is not None else "live")
        write_report(report, out_dir, arc_result)
    return summaries


def train(
    config: TRMConfig,
    *,
    resume: bool = False,
    process_group: dist.ProcessGroup | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
    evaluate_at_end: bool = True,
    export: bool = True,
) -> TrainResult:
    """Train ``config`` to its step budget in ``config.run.path()``; ``resume`` continues from the latest checkpoint
    there (bit-exact on CPU). Returns the last train/eval metrics and where the export went."""
    with torch_threads(config.train.threads):
        return _train(config, resume, process_group, device, progress, evaluate_at_end, export)


def _train(config, resume, process_group, device, progress, evaluate_at_end, export) -> TrainResult:
    started = time.perf_counter()
    data_path = ensure_dataset(config, process_group)
    train_ds = PuzzleDataset.open(data_path, "train")
    eval_ds = PuzzleDataset.open(data_path, config.eval.split) if config.eval.modes else None
    trainer = Trainer(config, train_ds, process_group=process_group, device=device)
    is_main = trainer.rank == 0
    run_dir = config.run.path()
    log = MetricsLog(run_dir / "metrics.jsonl", enabled=is_main)

    if resume:
        found = latest_checkpoint(run_dir)
        if found is not None:
            load_trainer(trainer, found)
            log.truncate_after(trainer.step_count)
    elif is_main and (run_dir / "metrics.jsonl").exists():
        (run_dir / "metrics.jsonl").unlink()  # a fresh run replaces the old log instead of appending to it
    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(trainer.config.model_dump(mode="json"), indent=1, sort_keys=True))
        if trainer.step_count == 0:
            from trm.model import count_trainable_parameters

            log.write("info", 0, {"num_params": count_trainable_parameters(trainer.model),
                                  "total_steps": trainer.total_steps, "world_size": trainer.world_size})

    t = config.train
    eval_every = _interval_steps(t.eval_interval, t.interval_unit, trainer.steps_per_epoch)
    ckpt_every = _interval_steps(t.checkpoint_interval, t.interval_unit, trainer.steps_per_epoch)
    eval_model = trainer.ema_model() if eval_ds is not None else None
    arc = None
    if eval_ds is not None and eval_ds.metadata.task == "arc":
        from trm.evaluate.arc import ArcEvaluator

        arc = ArcEvaluator.for_dataset(eval_ds.path)

    def evaluate_now(step: int) -> dict[str, dict[str, Any]]:
        summaries = run_evaluation(trainer, eval_model, eval_ds, run_dir / "eval" / f"step_{step}", arc)
        for mode, summary in summaries.items():
            log.write("eval", step, {"mode": mode, **summary})
        return summaries

    result = TrainResult(run_dir=run_dir, steps=trainer.step_count, seconds=0.0)
    bar = _Progress(progress and is_main, trainer.total_steps, trainer.step_count)
    last_eval_step = last_ckpt_step = -1
    try:
        window_start, window_steps = time.perf_counter(), 0
        while trainer.step_count < trainer.total_steps:
            metrics = trainer.step()
            step = trainer.step_count
            window_steps += 1
            result.last_train = metrics
            if step % t.log_interval == 0 or step == trainer.total_steps:
                elapsed = time.perf_counter() - window_start
                metrics = {**metrics, "steps_per_second": window_steps / max(elapsed, 1e-9)}
                window_start, window_steps = time.perf_counter(), 0
                log.write("train", step, metrics)
                bar.update(step, f"loss {metrics['lm_loss']:.3f} exact {metrics['exact_accuracy']:.2f}")
            else:
                bar.update(step)
            if eval_every and step % eval_every == 0 and eval_ds is not None:
                result.last_eval = evaluate_now(step)
                last_eval_step = step
                for mode, summary in result.last_eval.items():
                    bar.print(f"step {step} eval\\[{mode}] exact {summary['exact_accuracy']:.4f} "
                              f"token {summary['accuracy']:.4f}")
            if ckpt_every and step % ckpt_every == 0:
                result.checkpoint = save_trainer(trainer, checkpoint_dir(run_dir, step)) or result.checkpoint
                last_ckpt_step = step
        step = trainer.step_count
        if evaluate_at_end and eval_ds is not None and last_eval_step != step:
            result.last_eval = evaluate_now(step)
        if last_ckpt_step != step:
            result.checkpoint = save_trainer(trainer, checkpoint_dir(run_dir, step)) or result.checkpoint
        if export and is_main:
            result.export_dir = export_model(trainer.ema_model(), trainer.config, run_dir / "export")
    finally:
        bar.close()
    result.steps = trainer.step_count
    result.seconds = time.perf_counter() - started
    return result
