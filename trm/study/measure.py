"""A study trial's test: export its val-selected checkpoint and measure it once on the test split.

Selection happened on validation during training (the trial keeps its best-scoring checkpoint); test is read here
and nowhere else, so no choice in a study ever sees test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, Field

from trm.distributed.train_job import fetch_checkpoint
from trm.evaluate.report import build_report, evaluate_modes, open_for_evaluation, write_report
from trm.study.trials import StudyTrial
from trm.train.export import export_model, find_checkpoint_folder, load_exported
from trm.train.metrics_log import read_metrics, training_segments

TEST_MODE = "fixed"  # the official evaluation: halt_max_steps supervision steps, no early halting


class TrialResult(BaseModel):
    """A trial with its test numbers and how long it trained (from its own metrics log)."""

    trial: StudyTrial
    export_dir: str
    test_exact: float
    test_accuracy: float
    train_seconds: float | None = None
    started: float | None = Field(None, description="epoch seconds of the trial's first and last metrics record")
    finished: float | None = None
    segments: list[tuple[float, float]] = Field(
        default_factory=list, description="(first, last) epoch seconds of each stretch it trained (one per start)"
    )
    steps: int | None = None
    model: str | None = Field(None, description="NAME:V once published")
    metrics: dict[str, float] = Field(default_factory=dict, description="test metrics as published")


def training_span(metrics_log: Path) -> tuple[list[tuple[float, float]], int | None]:
    """(the stretches a trial trained, in epoch seconds; its last step) from its metrics.jsonl (nothing if it is
    missing). A trial stopped and resumed has one stretch per start (trm.train.metrics_log.training_segments)."""
    if not metrics_log.is_file():
        return [], None
    records = read_metrics(metrics_log)
    steps = [int(r["step"]) for r in records if isinstance(r.get("step"), int)]
    return training_segments(records), (max(steps) if steps else None)


TEST_THREADS = 2  # fixed, so a trial measured again gives the same numbers; 2 = the machine the study is sized for


def measure_trial(
    trial: StudyTrial, data_dir: Path, work_dir: Path, batch_size: int | None = None, threads: int = TEST_THREADS
) -> TrialResult:
    """Export ``trial``'s selected checkpoint into ``work_dir/export`` and evaluate it on ``data_dir``'s test split
    (fixed mode; eval.json in ``work_dir/eval``). A trial without a checkpoint is an error naming it."""
    if not trial.checkpoint:
        raise ValueError(
            f"trial {trial.trial} ({trial.variant}, seed {trial.seed}): no checkpoint ({trial.error or 'no report'}); "
            "resume the Tune run (trm tune --resume, or the flow's resume=<run>) to train it again"
        )
    torch.set_num_threads(threads)  # a fixed thread count: the same reductions, the same numbers, run after run
    local = fetch_checkpoint(trial.checkpoint, work_dir / "checkpoint")
    model, config = load_exported(find_checkpoint_folder(local))
    export_dir = export_model(model, config, work_dir / "export")
    model, config, dataset = open_for_evaluation(export_dir, data_dir, "test")
    results, _ = evaluate_modes(model, dataset, batch_size or config.eval.batch_size, [TEST_MODE], "cpu")
    report = build_report(results, None, checkpoint=str(export_dir), dataset=str(dataset.path), split="test")
    write_report(report, work_dir / "eval")
    summary: dict[str, Any] = report["modes"][TEST_MODE]
    metrics = {f"{TEST_MODE}/{k}": float(v) for k, v in summary.items() if k in ("exact_accuracy", "accuracy", "steps")}
    return trial_result(trial, metrics, str(export_dir))


def trial_result(
    trial: StudyTrial, metrics: dict[str, float], export_dir: str, model: str | None = None
) -> TrialResult:
    """A trial's result from its test ``metrics`` (as measured, or as published in ``model``'s manifest) and the
    timing in its own metrics log."""
    segments, steps = training_span(trial.metrics_log)
    return TrialResult(
        trial=trial,
        export_dir=export_dir,
        test_exact=metrics[f"{TEST_MODE}/exact_accuracy"],
        test_accuracy=metrics[f"{TEST_MODE}/accuracy"],
        train_seconds=sum(last - first for first, last in segments) if segments else None,
        started=segments[0][0] if segments else None,
        finished=segments[-1][1] if segments else None,
        segments=segments,
        steps=steps,
        model=model,
        metrics=dict(metrics),
    )
