"""`trm solve MODEL INPUT`: answers to puzzles a user hands in (a Sudoku, a maze, an ARC task) from a published
model, printed as grids and optionally written as JSON or CSV; `--ray` solves large CSV files with Ray Data."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from trm.cli.output import fail, pick_device
from trm.config import InferenceConfig, parse_strategy

if TYPE_CHECKING:  # torch-heavy types, imported inside the command to keep `trm --help` fast
    from trm.solver.answers import Answer

STRATEGY_HELP = (
    "inference strategy: fixed[:steps=N], adaptive[:halt_threshold=T,stable=M,steps=N], "
    "trajectories[:trajectories=K,noise=S,seed=R,steps=N], "
    "first_to_halt[:halt_threshold=T,stable=M,trajectories=K,...], "
    "vote[:votes=V,seed=R,steps=N] (Sudoku, Maze)"
)


def _strategy(spec: str) -> InferenceConfig:
    try:
        chosen = parse_strategy(spec)
    except ValueError as err:
        fail(f"--strategy {spec}: {err}")
    if chosen.calibrate:
        from trm.evaluate.strategies import CALIBRATE_NEEDS_VAL  # lazy: torch

        fail(f"--strategy {spec}: {CALIBRATE_NEEDS_VAL}")
    return chosen


def _summary(answers: list[Answer]) -> str:
    """One line: how many puzzles, and how many were right where a solution was given."""
    judged = [a for a in answers if a.correct is not None]
    passes = sum(a.forward_passes for a in answers) / max(1, len(answers))
    line = f"{len(answers)} puzzle(s) solved, {passes:.1f} forward passes per puzzle"
    if judged:
        right = sum(bool(a.correct) for a in judged)
        line += f"; {right}/{len(judged)} right ({100 * right / len(judged):.1f}%) where a solution was given"
    return line


def _local(
    model: str, source: str, strategy: InferenceConfig, out: Path | None, options: dict, show: int, store: str | None
) -> None:
    from trm.solver.answers import output_format, render_answer, write_answers  # lazy: numpy, torch
    from trm.solver.runner import open_solver, read_for, solve  # lazy: as above

    if out is not None:
        output_format(out)  # an unknown suffix fails before the model is loaded
    solver = open_solver(model, device=options["device"], store=store)
    puzzles = read_for(solver, source, num_variants=options["variants"], seed=options["seed"])
    answers = solve(solver, puzzles, strategy, batch_size=options["batch_size"])
    for answer in answers[:show]:
        typer.echo(render_answer(answer))
        typer.echo("")
    if len(answers) > show:
        typer.echo(f"... {len(answers) - show} more not shown (--show N)")
    typer.echo(_summary(answers))
    if out is not None:
        typer.echo(f"answers written to {write_answers(answers, out)}")


def solve_command(
    model: Annotated[str, typer.Argument(help="store reference ([STORE#]NAME[:V|@ALIAS]) or an export folder")],
    source: Annotated[
        str,
        typer.Argument(
            metavar="INPUT",
            help="a puzzle written out, or a file: Sudoku string/CSV, maze grid/CSV, ARC task JSON (file or folder)",
        ),
    ],
    strategy: Annotated[str, typer.Option("--strategy", metavar="SPEC", help=STRATEGY_HELP)] = "fixed",
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="write the answers: .json or .csv (with --ray: a folder/URL)")
    ] = None,
    store: Annotated[str | None, typer.Option("--store", help="store URL when MODEL names no store")] = None,
    show: Annotated[int, typer.Option("--show", min=0, help="answers to print as grids")] = 10,
    variants: Annotated[int, typer.Option("--variants", min=1, help="ARC: augmented copies voted over")] = 8,
    seed: Annotated[int, typer.Option("--seed", help="ARC: seed of the augmented copies")] = 0,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="model rows per call")] = 256,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda")] = "auto",
    ray: Annotated[
        bool, typer.Option("--ray", help="solve CSV files with Ray Data; answers as Parquet in --out")
    ] = False,
    workers: Annotated[int, typer.Option("--workers", min=1, help="--ray: model actors")] = 2,
    address: Annotated[
        str | None, typer.Option("--address", help="--ray: Ray cluster address (default: local)")
    ] = None,
) -> None:
    """Solve puzzles with a model: print each answer as a grid (with whether it is right when a solution is
    given) and, with --out, write answer, steps, halting confidence and forward passes per puzzle."""
    chosen = _strategy(strategy)
    if ray:
        if out is None:
            fail("--ray writes Parquet: give the output folder or s3:// URL with --out")
        _with_ray(model, source, chosen, str(out), workers, address, batch_size, store)
        return
    options = {"device": pick_device(device), "variants": variants, "seed": seed, "batch_size": batch_size}
    _local(model, source, chosen, out, options, show, store)


def _with_ray(
    model: str,
    source: str,
    strategy: InferenceConfig,
    out: str,
    workers: int,
    address: str | None,
    batch_size: int,
    store: str | None,
) -> None:
    from trm.distributed.batch_solve import solve_files  # lazy: importing ray costs seconds

    if store is not None and "#" not in model and not Path(model).is_dir():
        model = f"{store}#{model}"
    summary = solve_files(
        model, source.split(","), out, strategy, workers=workers, batch_size=batch_size, address=address
    )
    typer.echo(str(summary))
