"""`trm data ...`: build a dataset by name (what the DVC stages run) and look inside a built one.

Heavy imports (pyarrow, the builders) happen inside the commands so that `trm --help` stays instant.
Also runnable as `python -m trm.data.cli`, which the DVC stages use: it imports only the data floor.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

data_app = typer.Typer(no_args_is_help=True, add_completion=False, help="Build and inspect puzzle datasets.")
console = Console()

ARC_SYMBOLS = {0: " ", 1: "#"}  # PAD, EOS; colours 0-9 print as digits
MAZE_SYMBOLS = {0: "?", 1: "#", 2: ".", 3: "S", 4: "G", 5: "o"}  # open cells as '.' so they stay visible


def parse_assignments(assignments: list[str]) -> dict[str, str]:
    """`["a.b=1", "seed=3"]` -> `{"a.b": "1", "seed": "3"}`; the builder's pydantic model coerces the strings."""
    parsed: dict[str, str] = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--set")
        parsed[key.strip()] = value
    return parsed


def flatten(section: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested params.yaml section -> dotted keys, the form `build_dataset` overrides take."""
    flat: dict[str, Any] = {}
    for key, value in section.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def params_section(params_file: Path, name: str) -> dict[str, Any]:
    """The `name:` section of a DVC params file, flattened; a missing section is an error (a typo would otherwise
    silently build with defaults while DVC believes the params were applied)."""
    import yaml

    try:
        document = yaml.safe_load(params_file.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise typer.BadParameter(f"{params_file}: unreadable ({error})", param_hint="--params") from error
    if not isinstance(document, dict) or name not in document:
        raise typer.BadParameter(f"{params_file}: no section {name!r}", param_hint="--params")
    section = document[name] or {}
    if not isinstance(section, dict):
        raise typer.BadParameter(f"{params_file}: section {name!r} must be a mapping", param_hint="--params")
    return flatten(section)


@data_app.command("list")
def list_datasets() -> None:
    """Names that `trm data build` accepts."""
    from trm.data.build import dataset_names

    for name in dataset_names():
        console.print(name)


@data_app.command()
def build(
    name: str = typer.Argument(..., help="dataset name, see `trm data list`"),
    assignments: list[str] = typer.Option([], "--set", help="builder parameter override KEY=VALUE (repeatable)"),
    out: Path | None = typer.Option(None, "--out", help="folder that receives NAME/ (default: trm.paths.data_root())"),
    params: Path | None = typer.Option(None, "--params", help="YAML file whose NAME: section gives parameters"),
) -> None:
    """Build dataset NAME (seeded: the same parameters give byte-identical files)."""
    from trm.data.build import build_dataset, dataset_names

    if name not in dataset_names():
        raise typer.BadParameter(f"unknown dataset {name!r}; known: {', '.join(dataset_names())}", param_hint="NAME")
    overrides: dict[str, Any] = params_section(params, name) if params else {}
    overrides.update(parse_assignments(assignments))
    started = time.perf_counter()
    try:
        folder = build_dataset(name, overrides or None, out_root=out, progress=True)
    except ValueError as error:  # DataError and parameter errors name the file/row/key; a traceback adds nothing
        message = f"building {name} failed: {error}"
        console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from error
    elapsed = time.perf_counter() - started
    console.print(f"[green]built[/green] {name} -> {folder} in {elapsed:.1f} s")
    _print_counts(folder)


def _print_counts(folder: Path) -> None:
    from trm.data.dataset_folder import read_metadata

    metadata = read_metadata(folder)
    table = Table(title=f"{metadata.name} ({metadata.task})")
    for column in ("split", "examples", "puzzles", "groups", "examples/puzzle"):
        table.add_column(column, justify="right")
    for split, stats in metadata.splits.items():
        table.add_row(split, f"{stats.examples:,}", f"{stats.puzzles:,}", f"{stats.groups:,}",
                      f"{stats.mean_puzzle_examples:.2f}")
    console.print(table)


@data_app.command()
def show(
    name: str = typer.Argument(..., help="dataset name (under the data root) or a folder"),
    split: str = typer.Option("train", "--split", help="train | test"),
    count: int = typer.Option(3, "-n", "--count", help="how many examples to render"),
) -> None:
    """Counts per split, a metadata summary and the first few examples rendered as grids."""
    from trm.data.dataset_folder import DatasetFormatError, read_metadata, resolve_dataset_path

    folder = resolve_dataset_path(name)
    try:
        if not folder.is_dir():
            raise DatasetFormatError(f"{folder}: dataset folder not found (build it with `trm data build {name}`)")
        metadata = read_metadata(folder)
    except DatasetFormatError as error:
        console.print(f"[red]error:[/red] {escape(str(error))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from error
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
        problem = f"no split {split!r} in {folder} (have {', '.join(sorted(metadata.splits))})"
        console.print(f"[red]error:[/red] {escape(problem)}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    rows = _first_rows(folder / f"{split}.parquet", count)
    names = _identifier_names(folder) if rows and metadata.num_puzzle_identifiers > 1 else {}
    for row in rows:
        identifier = row["puzzle_identifier"]
        named = f" = {names[identifier]}" if identifier in names else ""
        console.print(
            f"\n[bold]{split} row {row['row']}[/bold]  source {escape(row['source_id'])}  puzzle {row['puzzle_index']}  "
            f"group {row['group_index']}  identifier {identifier}{escape(named)}",
            highlight=False,
            soft_wrap=True,
        )
        console.print(side_by_side(render_grid(row["inputs"], metadata.task, metadata.grid_shape),
                                   render_grid(row["labels"], metadata.task, metadata.grid_shape)),
                      markup=False, highlight=False, soft_wrap=True)


def _first_rows(parquet_file: Path, count: int) -> list[dict[str, Any]]:
    """Read only the first `count` rows: a full ARC split would be gigabytes."""
    import pyarrow.parquet as pq

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
    import json

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
    return "\n".join(f"{a.ljust(width)}{gap if i == 0 else blank_gap}{b}" for i, (a, b) in enumerate(zip(left, right)))


if __name__ == "__main__":
    data_app()
