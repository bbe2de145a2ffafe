"""`trm evaluate CHECKPOINT... --data NAME`: metrics in fixed / adaptive mode, ARC pass@K and submission.json, and
with ``--strategy SPEC`` the numbers of further inference strategies (trm/evaluate/strategies.py)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from trm.cli.output import fail, pick_device
from trm.config import InferenceConfig, parse_strategy

if TYPE_CHECKING:  # torch-heavy types, imported inside the command to keep `trm --help` fast
    from trm.data.loader import PuzzleDataset
    from trm.evaluate.arc import ArcEvaluator
    from trm.model import TRM

console = Console()


class ModeChoice(StrEnum):
    fixed = "fixed"
    adaptive = "adaptive"
    both = "both"


def _print_report(report: dict[str, Any]) -> None:
    table = Table(title=f"{report['checkpoint']} on {report['dataset']} ({report['split']})")
    for column in ("mode", "exact acc", "token acc", "q-halt acc", "mean steps", "rows", "puzzles/s"):
        table.add_column(column, justify="right")
    for mode, m in report["modes"].items():
        table.add_row(
            mode,
            f"{m['exact_accuracy']:.4f}",
            f"{m['accuracy']:.4f}",
            f"{m['q_halt_accuracy']:.4f}",
            f"{m['steps']:.2f}",
            str(m["count"]),
            f"{m['puzzles_per_second']:.1f}",
        )
    console.print(table)
    fixed = report["modes"].get("fixed")
    if fixed and fixed.get("per_step"):
        curve = Table(title="exact accuracy after supervision step k (fixed mode)")
        for point in fixed["per_step"]:
            curve.add_column(str(point["step"]), justify="right")
        curve.add_row(*[f"{p['exact_accuracy']:.3f}" for p in fixed["per_step"]])
        console.print(curve)
    if "arc" in report:
        arc = report["arc"]
        ks = [key for key in arc if key.startswith("pass@")]
        arc_table = Table(title=f"ARC ({arc['num_tasks']} tasks, {arc['num_votes']} votes, {arc['voted_mode']} mode)")
        for key in ks:
            arc_table.add_column(key, justify="right")
        arc_table.add_row(*[f"{arc[key]:.4f}" for key in ks])
        console.print(arc_table)


def _load(checkpoint: Path, data: str | None, split: str, device: str) -> tuple[TRM, Any, PuzzleDataset]:
    """The model, its config and the dataset split it is evaluated on (checked to fit each other)."""
    from trm.evaluate.report import open_for_evaluation  # lazy: torch

    try:
        return open_for_evaluation(checkpoint, data, split, device)
    except (ValueError, OSError) as err:
        fail(f"{checkpoint}: {err}")


def _run(
    model: TRM,
    dataset: PuzzleDataset,
    batch_size: int,
    modes: list[str],
    device: str,
    arc: ArcEvaluator | None,
    label: str,
) -> tuple[dict[str, Any], Any]:
    from trm.evaluate.report import evaluate_modes  # lazy: torch

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        tasks = {m: bar.add_task(f"{label} [{m}]", total=len(dataset)) for m in modes}
        return evaluate_modes(
            model, dataset, batch_size, modes, device, arc=arc, on_rows_done=lambda m, n: bar.advance(tasks[m], n)
        )


STRATEGY_HELP = (
    "also measure an inference strategy (repeatable): fixed[:steps=N], "
    "adaptive[:halt_threshold=T,stable=M,steps=N], trajectories[:trajectories=K,noise=S,seed=R,steps=N], "
    "first_to_halt[:halt_threshold=T,stable=M,trajectories=K,noise=S,seed=R,steps=N], "
    "vote[:votes=V,seed=R,steps=N] (Sudoku, Maze). 'adaptive:calibrate' first picks the threshold and stable run on "
    "the val split: the cheapest pair whose exact accuracy is within 0.5 points of fixed N steps. Written to eval.json "
    "under 'strategies'"
)


def _parse_strategies(specs: list[str]) -> list[InferenceConfig]:
    """One config per --strategy; a bad spec fails before anything is loaded."""
    parsed = []
    for spec in specs:
        try:
            parsed.append(parse_strategy(spec))
        except ValueError as err:
            fail(f"--strategy: {err}")
    return parsed


def _check_strategies(strategies: list[InferenceConfig], dataset: PuzzleDataset) -> None:
    """Refuse a strategy the dataset cannot run (vote on ARC, calibrating without a val split) before any compute."""
    from trm.evaluate.strategies import check_strategy  # lazy: torch

    meta = dataset.metadata
    for strategy in strategies:
        try:
            check_strategy(strategy, meta.task, meta.grid_shape, dataset.seq_len)
        except ValueError as err:
            fail(f"--strategy {strategy.label()}: {err}")
        if strategy.calibrate and not (dataset.path / "val.parquet").is_file():
            fail(f"--strategy {strategy.label()}: {dataset.path} has no val split to calibrate on")


def _run_strategies(
    model: TRM, config: Any, dataset: PuzzleDataset, batch_size: int, device: str, strategies: list[InferenceConfig]
) -> dict[str, Any]:
    """{label: summary} of every strategy on ``dataset``, with a progress bar per strategy."""
    from trm.evaluate.report import measure_strategies  # lazy: torch

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console, transient=True
    ) as bar:
        tasks: dict[str, Any] = {}

        def advance(label: str, rows: int) -> None:
            if label not in tasks:
                tasks[label] = bar.add_task(label, total=len(dataset))
            bar.advance(tasks[label], rows)

        return measure_strategies(model, config, dataset, batch_size, strategies, device, on_rows_done=advance)


def _print_strategies(summaries: dict[str, Any]) -> None:
    table = Table(title="inference strategies")
    for column in ("strategy", "exact acc", "token acc", "fwd passes/puzzle", "mean steps", "puzzles/s"):
        table.add_column(column, justify="right")
    for label, m in summaries.items():
        table.add_row(
            label,
            f"{m['exact_accuracy']:.4f}",
            f"{m['accuracy']:.4f}",
            f"{m['forward_passes']:.2f}",
            f"{m['steps']:.2f}",
            f"{m['puzzles_per_second']:.1f}",
        )
    console.print(table)
    for label, m in summaries.items():
        if "calibration" in m:
            fixed = m["calibration"]["fixed_exact_accuracy"]
            console.print(f"{label}: threshold calibrated on val (fixed N exact accuracy there {fixed:.4f})")


def evaluate_command(
    checkpoints: Annotated[list[Path], typer.Argument(help="exported model folder(s) or training checkpoint(s)")],
    data: Annotated[
        str | None, typer.Option("--data", help="built dataset name or folder (default: the model's)")
    ] = None,
    split: Annotated[str, typer.Option(help="split to evaluate")] = "test",
    mode: Annotated[
        ModeChoice, typer.Option(help="fixed = 16 steps (official); adaptive = stop at q_halt > 0")
    ] = ModeChoice.fixed,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help="rows per batch (default eval.batch_size)")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="output folder for eval.json (+ submission.json)")] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda")] = "auto",
    pool_votes: Annotated[
        bool,
        typer.Option("--pool-votes", help="ARC: pool votes across the given checkpoints (official aggregated voting)"),
    ] = False,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads")] = None,
    strategy: Annotated[list[str] | None, typer.Option("--strategy", metavar="SPEC", help=STRATEGY_HELP)] = None,
) -> None:
    """Evaluate one or more checkpoints: exact/token/q-halt accuracy, accuracy per supervision step, puzzles/s; on
    ARC also pass@1/2/5/10/100/1000 and submission.json; with --strategy also each strategy's numbers."""
    import torch  # lazy: torch costs seconds and `trm --help` does not need it

    strategies = _parse_strategies(strategy or [])
    if threads:
        torch.set_num_threads(threads)
    device_name = pick_device(device)
    modes = ["fixed", "adaptive"] if mode is ModeChoice.both else [mode.value]
    arc_evaluator: ArcEvaluator | None = None
    for checkpoint in checkpoints:
        arc_evaluator = _evaluate_checkpoint(
            checkpoint,
            data,
            split,
            modes,
            batch_size,
            out,
            device_name,
            pool_votes,
            len(checkpoints),
            arc_evaluator,
            strategies,
        )


def _evaluate_checkpoint(
    checkpoint: Path,
    data: str | None,
    split: str,
    modes: list[str],
    batch_size: int | None,
    out: Path | None,
    device_name: str,
    pool_votes: bool,
    num_checkpoints: int,
    arc_evaluator: ArcEvaluator | None,
    strategies: list[InferenceConfig],
) -> ArcEvaluator | None:
    """Evaluate one checkpoint and write its eval.json; returns the ARC evaluator (pooled across checkpoints)."""
    from trm.evaluate.report import arc_evaluator as arc_scorer  # lazy: torch
    from trm.evaluate.report import bounds_of, build_report, is_arc, write_report  # lazy: as above

    model, config, dataset = _load(checkpoint, data, split, device_name)
    _check_strategies(strategies, dataset)
    if is_arc(dataset) and (arc_evaluator is None or not pool_votes):
        arc_evaluator = arc_scorer(dataset, pool_across_evaluations=pool_votes)
    size = batch_size or config.eval.batch_size
    results, arc_result = _run(
        model, dataset, size, modes, device_name, arc_evaluator if is_arc(dataset) else None, Path(checkpoint).name
    )
    report = build_report(
        results,
        arc_result,
        checkpoint=str(checkpoint),
        dataset=str(dataset.path),
        split=split,
        batch_size=size,
        device=device_name,
        pooled_votes=pool_votes and num_checkpoints > 1,
        bounded=bounds_of(dataset, config),
    )
    if strategies:
        report["strategies"] = _run_strategies(model, config, dataset, size, device_name, strategies)
    out_dir = out or Path("eval") / f"{Path(checkpoint).resolve().name}-{dataset.path.name}"
    if out is not None and num_checkpoints > 1:
        out_dir = out / Path(checkpoint).resolve().name
    path = write_report(report, out_dir, arc_result)
    _print_report(report)
    if strategies:
        _print_strategies(report["strategies"])
    console.print(f"wrote {path}" + (f" and {out_dir / 'submission.json'}" if arc_result else ""))
    return arc_evaluator
