"""The dataset registry: every buildable dataset by name, its parameter model and its builder, plus the entry points
the CLI (``trm data build``), the DVC stages and training use. Parameters come from the params file
(``trm.paths.params_file()``), dotted overrides on top; the resolved values land in ``metadata.params``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trm.data.build_arc import build_arc
from trm.data.build_context import BuildContext, Progress
from trm.data.build_maze import build_maze_generated, build_maze_hard
from trm.data.build_sudoku import build_sudoku_extreme_1k, build_sudoku_extreme_full, sudoku_generated
from trm.data.params import (
    ArcParams,
    MazeGenParams,
    MazeHardParams,
    Params,
    ParamsError,
    SudokuExtreme1kParams,
    SudokuExtremeFullParams,
    SudokuGenParams,
    load_params,
)
from trm.paths import data_root
from trm.paths import params_file as default_params_file


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    params_model: type[Params]
    builder: Callable[[Any, BuildContext], None]
    description: str


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in [
        DatasetSpec(
            "sudoku-extreme-1k",
            SudokuExtreme1kParams,
            build_sudoku_extreme_1k,
            "1000 real Sudoku-Extreme train puzzles x num_aug; generated hard test set disjoint from train",
        ),
        DatasetSpec(
            "sudoku-extreme-full",
            SudokuExtremeFullParams,
            build_sudoku_extreme_full,
            "user-supplied full Sudoku-Extreme train/test CSVs, seeded train subsample",
        ),
        DatasetSpec("maze-hard-1k", MazeHardParams, build_maze_hard, "Maze-Hard 30x30, 1000 train / 1000 test"),
        DatasetSpec("arc-agi-1", ArcParams, build_arc, "ARC-AGI-1 training+evaluation+ConceptARC, test on evaluation"),
        DatasetSpec(
            "arc-agi-2", ArcParams, build_arc, "ARC-AGI-2 training2+evaluation2+ConceptARC, test on evaluation2"
        ),
        DatasetSpec("sudoku-4x4", SudokuGenParams, sudoku_generated(4), "generated 4x4 Sudoku (CPU preset)"),
        DatasetSpec("sudoku-6x6", SudokuGenParams, sudoku_generated(6), "generated 6x6 Sudoku (CPU preset)"),
        DatasetSpec("sudoku-9x9-cpu", SudokuGenParams, sudoku_generated(9), "generated 9x9 Sudoku (CPU preset)"),
        DatasetSpec(
            "sudoku-9x9-hard", SudokuGenParams, sudoku_generated(9), "generated 9x9 Sudoku with headroom (benchmark)"
        ),
        DatasetSpec("maze-small", MazeGenParams, build_maze_generated, "generated 10x10 mazes (CPU preset)"),
    ]
}


def dataset_names() -> list[str]:
    return list(DATASETS)


def _spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise ParamsError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[name]


def resolve_params(name: str, overrides: Mapping[str, Any] | None = None, params_file: Path | None = None) -> Params:
    """The ``name:`` section of the params file (default ``trm.paths.params_file()``) with the dotted ``overrides``
    applied, validated. Raises ParamsError naming the file, section and key of a missing, unknown or bad value."""
    spec = _spec(name)
    return load_params(spec.params_model, Path(params_file or default_params_file()), name, overrides)


def build_dataset(
    name: str,
    overrides: Mapping[str, Any] | None = None,
    out_root: Path | None = None,
    progress: bool = False,
    params_file: Path | None = None,
) -> Path:
    """Build dataset ``name`` into ``out_root/name`` (default ``trm.paths.data_root()``) and return that folder.
    The folder appears only when the build succeeded (an older build is replaced at that moment)."""
    spec = _spec(name)
    params = resolve_params(name, overrides, params_file)
    out = Path(out_root if out_root is not None else data_root()) / name
    ctx = BuildContext(name=name, out=out, progress=Progress(progress), params=params)
    try:
        spec.builder(params, ctx)
    finally:
        ctx.progress.close()
    return out


def ensure_built(path: Path, name: str, params_file: Path | None = None, *, progress: bool = True) -> Path:
    """``path`` when it holds a built dataset; else, for a registered ``name``, build it there from the params file
    first (so a training run on a fresh machine needs no separate build step)."""
    path = Path(path)
    if (path / "metadata.json").is_file():
        return path
    if name not in DATASETS:
        raise FileNotFoundError(
            f"{path}: no built dataset there, and {name!r} is not a registered dataset that "
            f"could be built (registered: {', '.join(DATASETS)})"
        )
    if path.name != name:
        raise FileNotFoundError(
            f"{path}: no built dataset there; registered dataset {name!r} can only be built into "
            f"a folder named {name!r} (got {path.name!r})"
        )
    build_dataset(name, out_root=path.parent, progress=progress, params_file=params_file)
    return path
