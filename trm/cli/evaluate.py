"""`trm evaluate CHECKPOINT... --data NAME`: metrics in fixed / adaptive mode, ARC pass@K and submission.json."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from trm.cli.output import fail

if TYPE_CHECKING:  # torch-heavy types, imported inside the command to keep `trm --help` fast
    from trm.data.loader import PuzzleDataset
    from trm.evaluate.arc import ArcEvaluator
    from trm.model import TRM

console = Console()


class ModeChoice(StrEnum):
    fixed = "fixed"
    adaptive = "adaptive"
    both = "both"


def _pick_device(name: str) -> str:
    import torch  # lazy: torch costs seconds and `trm --help` does not need it

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        fail("--device cuda requested but no CUDA device is available")
    return name


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
) -> None:
    """Evaluate one or more checkpoints: exact/token/q-halt accuracy, accuracy per supervision step, puzzles/s; on
    ARC also pass@1/2/5/10/100/1000 and submission.json."""
    import torch  # lazy: torch costs seconds and `trm --help` does not need it

    from trm.evaluate.report import arc_evaluator as arc_scorer  # lazy: as above
    from trm.evaluate.report import bounds_of, build_report, is_arc, write_report  # lazy: as above

    if threads:
        torch.set_num_threads(threads)
    device_name = _pick_device(device)
    modes = ["fixed", "adaptive"] if mode is ModeChoice.both else [mode.value]
    arc_evaluator: ArcEvaluator | None = None
    for checkpoint in checkpoints:
        model, config, dataset = _load(checkpoint, data, split, device_name)
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
            pooled_votes=pool_votes and len(checkpoints) > 1,
            bounded=bounds_of(dataset, config),
        )
        out_dir = out or Path("eval") / f"{Path(checkpoint).resolve().name}-{dataset.path.name}"
        if out is not None and len(checkpoints) > 1:
            out_dir = out / Path(checkpoint).resolve().name
        path = write_report(report, out_dir, arc_result)
        _print_report(report)
        console.print(f"wrote {path}" + (f" and {out_dir / 'submission.json'}" if arc_result else ""))
