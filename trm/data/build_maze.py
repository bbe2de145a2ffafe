"""Maze dataset builders: Maze-Hard from its CSVs and generated mazes for the CPU presets. One group per maze (its 8
dihedral variants with ``aug``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from trm.data.augment import maze_dihedral_variants
from trm.data.build_context import (
    GROUPS_PER_BATCH,
    BuildContext,
    Progress,
    csv_source_names,
    running_total,
    source_file,
    source_path,
)
from trm.data.maze import MAZE_VOCAB, read_maze_csv, validate_mazes
from trm.data.maze_gen import generate_maze_splits
from trm.data.params import MazeGenParams, MazeHardParams
from trm.data.validation import carve_validation
from trm.data.writer import DatasetWriter, ExampleBatch, ExampleWriter


def maze_meta(rows: int, cols: int) -> dict[str, Any]:
    """Metadata fields of a maze dataset of ``rows`` x ``cols`` grids."""
    return {
        "task": "maze",
        "seq_len": rows * cols,
        "vocab_size": len(MAZE_VOCAB),
        "vocab": MAZE_VOCAB,
        "grid_shape": (rows, cols),
        "pad_id": 0,
        "ignore_label_id": 0,
    }


def write_maze_split(
    writer: ExampleWriter,
    inputs: np.ndarray,
    labels: np.ndarray,
    rows: int,
    cols: int,
    aug: bool,
    source_names: list[str],
    progress: Progress,
) -> None:
    """One group per maze; with ``aug`` the group holds its 8 dihedral variants (ids 0..7), each a puzzle."""
    n = inputs.shape[0]
    per_group = 8 if aug else 1
    for start in range(0, n, GROUPS_PER_BATCH):
        stop = min(n, start + GROUPS_PER_BATCH)
        x, y = inputs[start:stop], labels[start:stop]
        dihedral_ids = np.zeros(len(x), np.int8)
        if aug:
            x, dihedral_ids = maze_dihedral_variants(x, rows, cols)
            y, _ = maze_dihedral_variants(y, rows, cols)
        count = len(x)
        groups = np.repeat(np.arange(start, stop, dtype=np.int32), per_group)
        writer.write(
            ExampleBatch(
                inputs=x,
                labels=y,
                puzzle_identifier=np.zeros(count, np.int32),
                puzzle_index=np.arange(count, dtype=np.int32) + start * per_group,
                group_index=groups,
                source_names=source_names,
                source_codes=groups,
                aug_dihedral=dihedral_ids,
            )
        )
        progress.advance(stop - start)


def write_maze_dataset(
    dw: DatasetWriter,
    parts: dict[str, tuple[np.ndarray, np.ndarray, list[str]]],
    rows: int,
    cols: int,
    aug: bool,
    progress: Progress,
) -> None:
    """Train (with its dihedral variants when ``aug``), then validation and test (originals only); ``parts`` maps
    a split to (inputs, labels, source names)."""
    for split in ("train", "val", "test"):
        inputs, labels, names = parts[split]
        write_maze_split(dw.split(split), inputs, labels, rows, cols, aug and split == "train", names, progress)


def build_maze_hard(params: MazeHardParams, ctx: BuildContext) -> None:
    progress = ctx.progress
    train_path, test_path = source_path(params.train_csv), source_path(params.test_csv)
    progress.stage("reading and checking mazes", None)
    source = read_maze_csv(train_path, params.rows, params.cols)
    test = read_maze_csv(test_path, params.rows, params.cols)
    if (test.rows, test.cols) != (source.rows, source.cols):
        raise ValueError(f"train mazes are {source.rows}x{source.cols} but test mazes {test.rows}x{test.cols}")
    train_index, val_index = carve_validation(len(source), params.val_count, params.seed, f"mazes of {train_path.name}")
    train, val = source.take(train_index), source.take(val_index)
    with DatasetWriter(ctx.out, source.rows * source.cols) as dw:
        progress.stage("writing", len(source) + len(test))
        parts = {
            name: (mazes.inputs, mazes.labels, csv_source_names(mazes.path, mazes.row_numbers))
            for name, mazes in (("train", train), ("val", val), ("test", test))
        }
        write_maze_dataset(dw, parts, source.rows, source.cols, params.aug, progress)
        sources = [source_file(params.train_csv, train_path), source_file(params.test_csv, test_path)]
        dw.commit(ctx.metadata(**maze_meta(source.rows, source.cols), sources=sources))


def build_maze_generated(params: MazeGenParams, ctx: BuildContext) -> None:
    progress = ctx.progress
    if params.density_min > params.density_max:
        raise ValueError(f"density_min {params.density_min} > density_max {params.density_max}")
    counts = (params.train_count, params.val_count, params.test_count)
    progress.stage(f"generating {params.rows}x{params.cols} mazes", sum(counts))
    sets = generate_maze_splits(
        params.rows,
        params.cols,
        counts,
        params.seed,
        params.min_path_len,
        density=(params.density_min, params.density_max),
        progress=running_total(progress),
    )
    parts = {}
    for split, mazes in zip(("train", "val", "test"), sets, strict=True):  # cheap guard against generator regressions
        validate_mazes(Path(f"<generated maze {split}>"), mazes.inputs, mazes.labels, params.rows, params.cols)
        parts[split] = (mazes.inputs, mazes.labels, [f"gen:{k}" for k in range(len(mazes))])
    with DatasetWriter(ctx.out, params.rows * params.cols) as dw:
        progress.stage("writing", sum(counts))
        write_maze_dataset(dw, parts, params.rows, params.cols, params.aug, progress)
        dw.commit(ctx.metadata(**maze_meta(params.rows, params.cols), sources=[]))
