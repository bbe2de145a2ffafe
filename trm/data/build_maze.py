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
from trm.data.maze_gen import generate_maze_split
from trm.data.params import MazeGenParams, MazeHardParams
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


def build_maze_hard(params: MazeHardParams, ctx: BuildContext) -> None:
    progress = ctx.progress
    train_path, test_path = source_path(params.train_csv), source_path(params.test_csv)
    progress.stage("reading and checking mazes", None)
    train = read_maze_csv(train_path, params.rows, params.cols)
    test = read_maze_csv(test_path, params.rows, params.cols)
    if (test.rows, test.cols) != (train.rows, train.cols):
        raise ValueError(f"train mazes are {train.rows}x{train.cols} but test mazes {test.rows}x{test.cols}")
    with DatasetWriter(ctx.out, train.rows * train.cols) as dw:
        progress.stage("writing", len(train) + len(test))
        write_maze_split(
            dw.split("train"),
            train.inputs,
            train.labels,
            train.rows,
            train.cols,
            params.aug,
            csv_source_names(train_path, train.row_numbers),
            progress,
        )
        write_maze_split(
            dw.split("test"),
            test.inputs,
            test.labels,
            test.rows,
            test.cols,
            False,
            csv_source_names(test_path, test.row_numbers),
            progress,
        )
        sources = [source_file(params.train_csv, train_path), source_file(params.test_csv, test_path)]
        dw.commit(ctx.metadata(**maze_meta(train.rows, train.cols), sources=sources))


def build_maze_generated(params: MazeGenParams, ctx: BuildContext) -> None:
    progress = ctx.progress
    if params.density_min > params.density_max:
        raise ValueError(f"density_min {params.density_min} > density_max {params.density_max}")
    progress.stage(f"generating {params.rows}x{params.cols} mazes", params.train_count + params.test_count)
    train, test = generate_maze_split(
        params.rows,
        params.cols,
        params.train_count,
        params.test_count,
        params.seed,
        params.min_path_len,
        density=(params.density_min, params.density_max),
        progress=running_total(progress),
    )
    for split, mazes in (("train", train), ("test", test)):  # cheap guard against generator regressions
        validate_mazes(Path(f"<generated maze {split}>"), mazes.inputs, mazes.labels, params.rows, params.cols)
    with DatasetWriter(ctx.out, params.rows * params.cols) as dw:
        progress.stage("writing", params.train_count + params.test_count)
        write_maze_split(
            dw.split("train"),
            train.inputs,
            train.labels,
            params.rows,
            params.cols,
            params.aug,
            [f"gen:{k}" for k in range(len(train.inputs))],
            progress,
        )
        write_maze_split(
            dw.split("test"),
            test.inputs,
            test.labels,
            params.rows,
            params.cols,
            False,
            [f"gen:{k}" for k in range(len(test.inputs))],
            progress,
        )
        dw.commit(ctx.metadata(**maze_meta(params.rows, params.cols), sources=[]))
