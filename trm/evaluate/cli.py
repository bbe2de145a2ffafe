"""`trm evaluate CHECKPOINT... --data NAME`: metrics in fixed / adaptive mode, ARC pass@K and submission.json."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console()


class ModeChoice(str, Enum):
    fixed = "fixed"
    adaptive = "adaptive"
    both = "both"


def _pick_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise typer.BadParameter("--device cuda requested but no CUDA device is available")
    return name


def _print_report(report: dict) -> None:
    table = Table(title=f"{report['checkpoint']} on {report['dataset']} ({report['split']})")
    for column in ("mode", "exact acc", "token acc", "q-halt acc", "mean steps", "rows", "puzzles/s"):
        table.add_column(column, justify="right")
    for mode, m in report["modes"].items():
        table.add_row(mode, f"{m['exact_accuracy']:.4f}", f"{m['accuracy']:.4f}", f"{m['q_halt_accuracy']:.4f}",
                      f"{m['steps']:.2f}", str(m["count"]), f"{m['puzzles_per_second']:.1f}")
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


def evaluate_command(
    checkpoints: Annotated[list[Path], typer.Argument(help="exported model folder(s) or training checkpoint folder(s)")],
    data: Annotated[str | None, typer.Option("--data", help="built dataset name or folder (default: the one the model was trained on)")] = None,
    split: Annotated[str, typer.Option(help="split to evaluate")] = "test",
    mode: Annotated[ModeChoice, typer.Option(help="fixed = 16 steps (official); adaptive = stop at q_halt > 0")] = ModeChoice.fixed,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="rows per batch (default: the config's eval.batch_size)")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="output folder for eval.json (+ submission.json)")] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda")] = "auto",
    pool_votes: Annotated[bool, typer.Option("--pool-votes", help="ARC: pool votes across the given checkpoints (official aggregated voting); off = each checkpoint on its own")] = False,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads")] = None,
) -> None:
    """Evaluate one or more checkpoints: exact/token/q-halt accuracy, accuracy per supervision step, puzzles/s; on
    ARC also pass@1/2/5/10/100/1000 and submission.json."""
    import torch

    from trm.data.loader import PuzzleDataset
    from trm.evaluate.arc import ArcEvaluator
    from trm.evaluate.report import build_report, evaluate_modes, is_arc, write_report
    from trm.train.export import load_exported

    if threads:
        torch.set_num_threads(threads)
    device_name = _pick_device(device)
    modes = ["fixed", "adaptive"] if mode is ModeChoice.both else [mode.value]
    arc_evaluator: ArcEvaluator | None = None
    for checkpoint in checkpoints:
        try:
            model, config = load_exported(checkpoint, device=device_name)
        except (ValueError, OSError) as err:
            raise typer.BadParameter(str(err), param_hint="CHECKPOINT") from err
        dataset_ref = data if data is not None else str(config.data.resolve_path())
        try:
            dataset = PuzzleDataset.open(dataset_ref, split)
        except ValueError as err:
            raise typer.BadParameter(str(err), param_hint="--data") from err
        if (dataset.seq_len, dataset.metadata.vocab_size) != (config.model.seq_len, config.model.vocab_size):
            raise typer.BadParameter(
                f"{dataset.path}: seq_len/vocab {dataset.seq_len}/{dataset.metadata.vocab_size} but the model was "
                f"built for {config.model.seq_len}/{config.model.vocab_size}", param_hint="--data")
        if is_arc(dataset) and (arc_evaluator is None or not pool_votes):
            arc_evaluator = ArcEvaluator.for_dataset(dataset.path, pool_across_evaluations=pool_votes)
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, transient=True) as bar:
            tasks = {m: bar.add_task(f"{Path(checkpoint).name} [{m}]", total=len(dataset)) for m in modes}
            results, arc_result = evaluate_modes(
                model, dataset, batch_size or config.eval.batch_size, modes, device_name,
                arc=arc_evaluator if is_arc(dataset) else None,
                on_rows_done=lambda m, n: bar.advance(tasks[m], n),
            )
        report = build_report(results, arc_result, checkpoint=str(checkpoint), dataset=str(dataset.path),
                              split=split, batch_size=batch_size or config.eval.batch_size, device=device_name,
                              pooled_votes=pool_votes and len(checkpoints) > 1)
        out_dir = out or Path("eval") / f"{Path(checkpoint).resolve().name}-{dataset.path.name}"
        if out is not None and len(checkpoints) > 1:
            out_dir = out / Path(checkpoint).resolve().name
        path = write_report(report, out_dir, arc_result)
        _print_report(report)
        console.print(f"wrote {path}" + (f" and {out_dir / 'submission.json'}" if arc_result else ""))


def register(app: typer.Typer) -> None:
    """Add `evaluate` to the root `trm` command."""
    app.command("evaluate")(evaluate_command)
