"""`trm data ...`: build a dataset by name from the params file (what the DVC stages run) and look inside a built
one. The builders (numba, pyarrow) are imported inside the commands so that `trm --help` stays instant."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from trm.cli.output import RUNTIME_ERROR, OneLineErrors, fail
from trm.overrides import OverrideError, parse_assignments
from trm.paths import params_file as default_params_file

# rich_markup_mode=None: usage errors print as plain lines instead of a panel sized to the terminal
data_app = typer.Typer(
    cls=OneLineErrors,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    help="Build and inspect puzzle datasets.",
)
console = Console()

ARC_SYMBOLS = {0: " ", 1: "#"}  # PAD, EOS; colours 0-9 print as digits
MAZE_SYMBOLS = {0: "?", 1: "#", 2: ".", 3: "S", 4: "G", 5: "o"}  # open cells as '.' so they stay visible


@data_app.command("list")
def list_datasets() -> None:
    """Names that `trm data build` accepts."""
    from trm.data.build import dataset_names  # lazy: the builders import numba and pyarrow

    for name in dataset_names():
        console.print(name)


@data_app.command()
def build(
    name: str = typer.Argument(..., help="dataset name, see `trm data list`"),
    assignments: list[str] = typer.Option([], "--set", help="parameter override KEY=VALUE, value YAML (repeatable)"),
    out: Path | None = typer.Option(None, "--out", help="folder that receives NAME/ (default: trm.paths.data_root())"),
    params: Path | None = typer.Option(
        None, "--params", help="params file whose NAME: section gives the parameters (default: the repo's params.yaml)"
    ),
) -> None:
    """Build dataset NAME from the NAME: section of the params file, --set values on top (seeded: the same
    parameters give byte-identical files)."""
    from trm.data.build import build_dataset, dataset_names, resolve_params  # lazy: numba and pyarrow
    from trm.data.params import ParamsError  # lazy: with the builders

    params_file = params if params is not None else default_params_file()
    try:
        overrides = parse_assignments(assignments)
        if name not in dataset_names():
            fail(f"unknown dataset {name!r}; known: {', '.join(dataset_names())}")
        resolve_params(name, overrides, params_file)  # parameter mistakes are reported before any work starts
    except (OverrideError, ParamsError) as error:
        fail(str(error))
    started = time.perf_counter()
    try:
        folder = build_dataset(name, overrides, out_root=out, progress=True, params_file=params_file)
    except ValueError as error:  # DataError and builder checks name the file/row/key; a traceback adds nothing
        fail(f"building {name} failed: {error}", RUNTIME_ERROR)
    elapsed = time.perf_counter() - started
    console.print(f"[green]built[/green] {name} -> {folder} in {elapsed:.1f} s", soft_wrap=True)
    _print_counts(folder)


def _print_counts(folder: Path) -> None:
    from trm.data.dataset_folder import read_metadata  # lazy: pyarrow (via the schema)

    metadata = read_metadata(folder)
    table = Table(title=f"{metadata.name} ({metadata.task})")
    for column in ("split", "examples", "puzzles", "groups", "examples/puzzle"):
        table.add_column(column, justify="right")
    for split, stats in metadata.splits.items():
        table.add_row(
            split, f"{stats.examples:,}", f"{stats.puzzles:,}", f"{stats.groups:,}", f"{stats.mean_puzzle_examples:.2f}"
        )
    console.print(table)


@data_app.command()
def show(
    name: str = typer.Argument(..., help="dataset name (under the data root) or a folder"),
    split: str = typer.Option("train", "--split", help="train | val | test"),
    count: int = typer.Option(3, "-n", "--count", help="how many examples to render"),
) -> None:
    """Counts per split, a metadata summary and the first few examples rendered as grids."""
    from trm.data.dataset_folder import DatasetFormatError, read_metadata, resolve_dataset_path  # lazy: pyarrow

    folder = resolve_dataset_path(name)
    if not folder.is_dir():
        fail(f"{folder}: dataset folder not found (build it with `trm data build {name}`)", RUNTIME_ERROR)
    try:
        metadata = read_metadata(folder)
    except DatasetFormatError as error:
        fail(str(error), RUNTIME_ERROR)
    _print_counts(folder)
    console.print(
        f"seq_len {metadata.seq_len}, grid {metadata.grid_shape[0]}x{metadata.grid_shape[1]}, "
        f"vocab {metadata.vocab_size} "
        f"({' '.join(metadata.vocab)}), puzzle identifiers {metadata.num_puzzle_identifiers}, "
        f"builder {metadata.builder_version}"
    )
    console.print(f"params: {metadata.params}")
    for source in metadata.sources:
        console.print(f"source: {source.name} sha256 {source.sha256[:16]}…")
    if split not in metadata.splits:
        fail(f"no split {split!r} in {folder} (have {', '.join(sorted(metadata.splits))})", RUNTIME_ERROR)
    rows = _first_rows(folder / f"{split}.parquet", count)
    names = _identifier_names(folder) if rows and metadata.num_puzzle_identifiers > 1 else {}
    for row in rows:
        identifier = row["puzzle_identifier"]
        named = f" = {names[identifier]}" if identifier in names else ""
        console.print(
            f"\n[bold]{split} row {row['row']}[/bold]  source {escape(row['source_id'])}  "
            f"puzzle {row['puzzle_index']}  group {row['group_index']}  identifier {identifier}{escape(named)}",
            highlight=False,
            soft_wrap=True,
        )
        console.print(
            side_by_side(
                render_grid(row["inputs"], metadata.task, metadata.grid_shape),
                render_grid(row["labels"], metadata.task, metadata.grid_shape),
            ),
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


def _first_rows(parquet_file: Path, count: int) -> list[dict[str, Any]]:
    """Read only the first `count` rows: a full ARC split would be gigabytes."""
    import pyarrow.parquet as pq  # lazy: keeps `trm --help` fast

    if count <= 0:
        return []
    reader = pq.ParquetFile(parquet_file, memory_map=True)
    columns = ["inputs", "labels", "source_id", "puzzle_index", "group_index", "puzzle_identifier"]
    batch = next(reader.iter_batches(batch_size=count, columns=columns), None)
    if batch is None:
        return []
    rows = batch.to_pylist()[:count]
    for index, row in enumerate(rows):
        row["row"] = index
    return rows


def _identifier_names(folder: Path) -> dict[int, str]:
    """identifiers.json as {index: name}; unreadable -> {} (show is a viewer, the loader validates)."""
    try:
        names = json.loads((folder / "identifiers.json").read_text())
    except (OSError, ValueError):
        return {}
    return dict(enumerate(names)) if isinstance(names, list) else {}


def render_grid(tokens: list[int], task: str, grid_shape: tuple[int, int]) -> list[str]:
    """Token sequence -> text lines: Sudoku digits ('.' blank), maze characters, ARC colours as digits
    (cropped to the non-padding area; '#' marks the EOS row/column)."""
    rows, cols = grid_shape
    grid = [tokens[r * cols : (r + 1) * cols] for r in range(rows)]
    if task == "sudoku":
        return ["".join("." if t == 1 else "?" if t == 0 else _digit(t - 1) for t in line) for line in grid]
    if task == "maze":
        return ["".join(MAZE_SYMBOLS.get(t, "?") for t in line) for line in grid]
    if task == "arc":
        used_rows = [r for r in range(rows) if any(grid[r])]
        used_cols = [c for c in range(cols) if any(grid[r][c] for r in range(rows))]
        if not used_rows:
            return ["(empty)"]
        r0, r1, c0, c1 = used_rows[0], used_rows[-1], used_cols[0], used_cols[-1]
        return ["".join(ARC_SYMBOLS.get(t, str(t - 2)) for t in grid[r][c0 : c1 + 1]) for r in range(r0, r1 + 1)]
    return [" ".join(str(t) for t in line) for line in grid]


def _digit(value: int) -> str:
    return str(value) if value < 10 else chr(ord("A") + value - 10)


def side_by_side(left: list[str], right: list[str], gap: str = "   ->   ") -> str:
    width = max((len(line) for line in left), default=0)
    height = max(len(left), len(right))
    left = left + [""] * (height - len(left))
    right = right + [""] * (height - len(right))
    blank_gap = " " * len(gap)
    return "\n".join(
        f"{a.ljust(width)}{gap if i == 0 else blank_gap}{b}" for i, (a, b) in enumerate(zip(left, right, strict=True))
    )
