"""`trm tune` on a study space: the Tune run, every trial tested once, the report (nothing published: the Prefect
flow pipelines/study.py does the same and publishes every trial with its data lineage)."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import torch
from pydantic import BaseModel

from trm.config import TRMConfig
from trm.distributed.space import SearchSpace
from trm.distributed.tune import TuneResult, max_concurrency, run_tune
from trm.store.lineage import collect_git
from trm.study.measure import TrialResult, measure_trial
from trm.study.report import StudyContext, StudyReport, figure_beside, write_study_report
from trm.study.trials import StudyTrial, study_trials
from trm.train.metrics_log import covered_seconds


class StudyOutcome(BaseModel):
    tune: TuneResult
    tested: list[TrialResult]
    report: StudyReport


def training_wall_seconds(tested: list[TrialResult]) -> float:
    """Wall time during which at least one trial trained, read from their metrics logs: trials side by side count
    once, and a study stopped and resumed later is not charged for the stop."""
    return covered_seconds([segment for t in tested for segment in t.segments])


def study_context(
    config: TRMConfig,
    space: SearchSpace,
    tested: list[TrialResult],
    *,
    preset: str,
    command: str,
    space_name: str,
    load_before: float,
    concurrent: int,
) -> StudyContext:
    """The facts a reader of the report needs, with the trial config's budget (the space's fixed values)."""
    fixed = space.fixed
    starts = [t.started for t in tested if t.started is not None]
    return StudyContext(
        command=command,
        preset=preset,
        space=space_name,
        started=datetime.fromtimestamp(min(starts), UTC).isoformat(timespec="minutes") if starts else "",
        seconds=training_wall_seconds(tested),
        steps=fixed.get("train.max_steps", config.train.max_steps),
        eval_interval=fixed.get("train.eval_interval", config.train.eval_interval),
        global_batch_size=fixed.get("train.global_batch_size", config.train.global_batch_size),
        concurrent_trials=concurrent,
        threads_per_trial=fixed.get("train.threads", config.train.threads),
        test_steps=fixed.get("model.halt_max_steps", config.model.halt_max_steps),
        cores=os.cpu_count() or 0,
        load_before=round(load_before, 2),
        load_after=round(os.getloadavg()[0], 2),
        torch=torch.__version__,
        commit=collect_git(Path.cwd()).commit or "",
    )


def run_study(
    config: TRMConfig,
    space: SearchSpace,
    *,
    preset: str,
    space_name: str,
    command: str,
    address: str | None,
    storage: str,
    name: str,
    out_dir: Path,
    resume: bool = False,
    report_md: Path | None = None,
    say: Callable[[str], None] = print,
) -> StudyOutcome:
    """Train every trial (or continue the experiment ``name`` with ``resume``), test each val-selected checkpoint,
    and write fidelity.md / fidelity.png to ``out_dir`` (and to ``report_md`` with its figure in ``img/`` beside
    it, when given)."""
    load_before = os.getloadavg()[0]
    result = run_tune(config, space, address=address, storage=storage, name=name, out_dir=out_dir, resume=resume)
    trials = study_trials(result.trials, out_dir / "trials")
    tested = [_test(trial, config, out_dir, say) for trial in trials]
    concurrent = max_concurrency(space.search, os.cpu_count() or 1)
    context = study_context(
        config,
        space,
        tested,
        preset=preset,
        command=command,
        space_name=space_name,
        load_before=load_before,
        concurrent=concurrent,
    )
    report = write_study_report(space, tested, context, out_dir / "fidelity.md", out_dir / "fidelity.png")
    if report_md is not None:
        report = write_study_report(space, tested, context, report_md, figure_beside(report_md))
    return StudyOutcome(tune=result, tested=tested, report=report)


def _test(trial: StudyTrial, config: TRMConfig, out_dir: Path, say: Callable[[str], None]) -> TrialResult:
    tested = measure_trial(trial, config.data.resolve_path(), out_dir / "tested" / trial.trial)
    say(f"{trial.variant} seed {trial.seed}: val {trial.val_exact} -> test exact {tested.test_exact:.3f}")
    return tested
