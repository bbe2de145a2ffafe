"""Flow `evaluate`: score an exported model on its dataset's test split (ARC: pass@K with voting too).

The numbers come from trm.evaluate (the same report `trm evaluate` writes). Only deterministic quantities go into
the headline metrics that get published, so two identical retrains publish identical metrics; timings stay in the
report (eval.json) and the Prefect artifacts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from trm.evaluate.arc import check_submission
from trm.evaluate.report import (
    arc_evaluator,
    bounds_of,
    build_report,
    evaluate_modes,
    measure_strategies,
    open_for_evaluation,
    write_report,
)
from trm.store.card import STRATEGY_PREFIX  # eval.strategies: "strategy/<label>/<metric>"

TIMING_KEYS = {"seconds", "puzzles_per_second"}
HEADLINE_KEYS = ("exact_accuracy", "accuracy", "q_halt_accuracy", "steps", "count")


class EvalOutcome(BaseModel):
    metrics: dict[str, float]  # flat, deterministic: "<mode>/<metric>", "ARC/pass@K"
    throughput: dict[str, float]  # "<mode>/puzzles_per_second" (varies run to run)
    report_path: str


def headline_metrics(report: dict[str, Any]) -> tuple[dict[str, float], dict[str, float]]:
    """(deterministic metrics, timings) flattened from an eval.json document."""
    metrics: dict[str, float] = {}
    timings: dict[str, float] = {}
    for mode, summary in report.get("modes", {}).items():
        for key in HEADLINE_KEYS:
            if key in summary:
                metrics[f"{mode}/{key}"] = float(summary[key])
        for key in TIMING_KEYS & set(summary):
            timings[f"{mode}/{key}"] = float(summary[key])
    for key, value in (report.get("arc") or {}).items():
        if key.startswith("pass@"):
            metrics[f"ARC/{key}"] = float(value)
    for label, summary in (report.get("strategies") or {}).items():
        for key in (*HEADLINE_KEYS, "forward_passes"):
            if key in summary:
                metrics[f"{STRATEGY_PREFIX}{label}/{key}"] = float(summary[key])
        for key in TIMING_KEYS & set(summary):
            timings[f"{STRATEGY_PREFIX}{label}/{key}"] = float(summary[key])
    return metrics, timings


@task(cache_policy=NO_CACHE)
def evaluate_export(
    export_dir: Path,
    data_dir: Path,
    out_dir: Path,
    modes: list[str] | None = None,
    batch_size: int | None = None,
    split: str = "test",
    threads: int | None = 1,
) -> EvalOutcome:
    """Load the export, evaluate it on ``data_dir``'s ``split`` in each mode, write eval.json into ``out_dir``."""
    if threads:
        torch.set_num_threads(threads)  # fixed thread count: same reductions, same numbers, run after run
    model, config, dataset = open_for_evaluation(export_dir, data_dir, split)
    chosen = list(modes or config.eval.modes)
    size = batch_size or config.eval.batch_size
    arc = arc_evaluator(dataset)
    results, arc_result = evaluate_modes(model, dataset, size, chosen, "cpu", arc=arc)
    strategies = measure_strategies(model, config, dataset, size, config.eval.strategies)
    report = build_report(
        results,
        arc_result,
        checkpoint=str(export_dir),
        dataset=str(dataset.path),
        split=split,
        batch_size=size,
        device="cpu",
        bounded=bounds_of(dataset, config),
    )
    if strategies:
        report["strategies"] = strategies
    path = write_report(report, Path(out_dir), arc_result)
    if arc is not None:  # what a leaderboard would read: every scored task, k attempts per test pair
        check_submission(Path(out_dir) / "submission.json", arc.test_puzzles)
    metrics, timings = headline_metrics(report)
    get_run_logger().info("evaluation of %s on %s/%s: %s", export_dir, dataset.path.name, split, metrics)
    return EvalOutcome(metrics=metrics, throughput=timings, report_path=str(path))


@flow(name="evaluate", log_prints=True)
def evaluate(
    export_dir: str,
    data_dir: str,
    out_dir: str | None = None,
    modes: list[str] | None = None,
    batch_size: int | None = None,
    split: str = "test",
) -> EvalOutcome:
    """Evaluate an exported model on a built dataset; eval.json goes to ``out_dir`` (default beside the export)."""
    out = Path(out_dir) if out_dir else Path(export_dir).parent / "eval"
    return evaluate_export(Path(export_dir), Path(data_dir), out, modes, batch_size, split)
