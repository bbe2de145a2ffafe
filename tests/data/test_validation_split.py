"""Validation splits are disjoint from training, for every kind of dataset: no validation puzzle or solution, nor
any augmentation of one, is trained on (ARC: tests/data/test_sources_arc.py, which also checks the official split
rule). Small builds, a few seconds each."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from trm.data.build import build_dataset
from trm.data.maze_gen import layout_key
from trm.data.symmetry import grid_invariants

WALL_TOKEN = 1  # trm.data.maze.MAZE_VOCAB: "#"


def tokens(folder: Path, split: str, column: str) -> np.ndarray:
    table = pq.read_table(folder / f"{split}.parquet", columns=[column])
    flat = table.column(column).combine_chunks().flatten().to_numpy(zero_copy_only=False)
    return np.asarray(flat, dtype=np.uint8).reshape(table.num_rows, -1)


def column(folder: Path, split: str, name: str) -> list:
    return pq.read_table(folder / f"{split}.parquet", columns=[name]).column(name).to_pylist()


def solution_grids(folder: Path, split: str) -> np.ndarray:
    return tokens(folder, split, "labels") - 1  # sudoku tokens -> digits


def assert_originals_only(folder: Path, split: str) -> None:
    assert set(column(folder, split, "aug_dihedral")) == {0}
    assert all(m == list(range(10)) for m in column(folder, split, "aug_value_map"))


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("sudoku-4x4", {"train_count": 400, "val_count": 20, "test_count": 20, "num_aug": 0}),
        ("sudoku-9x9-cpu", {"train_count": 30, "val_count": 8, "test_count": 8, "num_aug": 4}),
    ],
)
def test_generated_sudoku_validation_grids_are_their_own(name: str, params: dict, tmp_path: Path) -> None:
    out = build_dataset(name, params, out_root=tmp_path)
    grids = {split: solution_grids(out, split) for split in ("train", "val", "test")}
    assert len(grids["val"]) == params["val_count"]
    assert_originals_only(out, "val")
    as_bytes = {split: {g.tobytes() for g in grids[split]} for split in grids}
    assert not as_bytes["val"] & (as_bytes["train"] | as_bytes["test"])
    if name == "sudoku-9x9-cpu":  # nor equivalent under the symmetries the augmentation draws from
        invariants = {split: set(grid_invariants(grids[split])) for split in grids}
        assert not invariants["val"] & (invariants["train"] | invariants["test"])


def test_sudoku_extreme_validation_puzzles_are_carved_out_before_augmentation(tmp_path: Path) -> None:
    out = build_dataset("sudoku-extreme-1k", {"num_aug": 3, "test_count": 2, "test_min_rating": 0}, out_root=tmp_path)
    val_sources, train_sources = set(column(out, "val", "source_id")), set(column(out, "train", "source_id"))
    assert len(val_sources) == 100 and len(train_sources) == 900 and not val_sources & train_sources
    assert all(source.startswith("train1k.csv:") for source in val_sources)
    assert_originals_only(out, "val")
    train_invariants = set(grid_invariants(solution_grids(out, "train")))
    assert not set(grid_invariants(solution_grids(out, "val"))) & train_invariants


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("maze-hard-1k", {"aug": True}),
        ("maze-small", {"train_count": 60, "val_count": 10, "test_count": 10, "aug": True}),
    ],
)
def test_validation_mazes_are_not_trained_on_in_any_orientation(name: str, params: dict, tmp_path: Path) -> None:
    out = build_dataset(name, params, out_root=tmp_path)
    rows, cols = (30, 30) if name == "maze-hard-1k" else (10, 10)

    def layouts(split: str) -> set[bytes]:
        walls = tokens(out, split, "inputs") == WALL_TOKEN
        return {layout_key(w.reshape(rows, cols)) for w in walls}

    val = layouts("val")
    assert len(val) == (100 if name == "maze-hard-1k" else 10)
    assert_originals_only(out, "val")
    assert not val & layouts("train")
