"""Parity with the official builders on the real offline data: the tokens we write must be the official arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from trm.data.build import build_dataset
from trm.data.maze import read_maze_csv
from trm.data.sudoku import read_sudoku_csv, sudoku_tokens


def _parquet_tokens(path: Path, column: str) -> np.ndarray:
    table = pq.read_table(path, columns=[column])
    flat = table.column(column).combine_chunks().flatten().to_numpy()
    return flat.reshape(table.num_rows, -1)


def test_maze_csv_reproduces_official_npy(shared_datasets: Path) -> None:
    for split in ("train", "test"):
        mazes = read_maze_csv(shared_datasets / "maze-hard" / f"{split}.csv")
        npy = shared_datasets / "maze-hard" / "npy" / split
        assert (mazes.rows, mazes.cols) == (30, 30)
        np.testing.assert_array_equal(mazes.inputs, np.load(npy / "all__inputs.npy"))
        np.testing.assert_array_equal(mazes.labels, np.load(npy / "all__labels.npy"))


def test_sudoku_1k_csv_reproduces_official_npy(shared_datasets: Path) -> None:
    rows = read_sudoku_csv(shared_datasets / "sudoku-extreme-1k" / "train1k.csv", size=9)
    npy = shared_datasets / "sudoku-extreme-1k" / "npy" / "train"
    np.testing.assert_array_equal(sudoku_tokens(rows.questions), np.load(npy / "all__inputs.npy"))
    np.testing.assert_array_equal(sudoku_tokens(rows.answers), np.load(npy / "all__labels.npy"))


def test_built_maze_hard_parquet_equals_official_arrays(shared_datasets: Path, tmp_path: Path) -> None:
    out = build_dataset("maze-hard-1k", {"val_count": 0}, out_root=tmp_path)  # all train rows, as the official
    for split in ("train", "test"):
        npy = shared_datasets / "maze-hard" / "npy" / split
        for column in ("inputs", "labels"):
            official = np.load(npy / f"all__{column}.npy")
            assert _parquet_tokens(out / f"{split}.parquet", column).tobytes() == official.tobytes()
        table = pq.read_table(out / f"{split}.parquet", columns=["puzzle_index", "group_index", "puzzle_identifier"])
        # official index arrays: one example per puzzle, one puzzle per group, identifier 0
        puzzle_offsets = np.load(npy / "all__puzzle_indices.npy")
        group_offsets = np.load(npy / "all__group_indices.npy")
        np.testing.assert_array_equal(np.diff(puzzle_offsets), np.bincount(table.column("puzzle_index").to_numpy()))
        np.testing.assert_array_equal(np.diff(group_offsets), np.bincount(table.column("group_index").to_numpy()))
        assert not table.column("puzzle_identifier").to_numpy().any()


def test_built_sudoku_1k_without_augmentation_equals_official_arrays(shared_datasets: Path, tmp_path: Path) -> None:
    out = build_dataset(
        "sudoku-extreme-1k", {"num_aug": 0, "val_count": 0, "test_count": 3, "test_min_rating": 0}, out_root=tmp_path
    )
    npy = shared_datasets / "sudoku-extreme-1k" / "npy" / "train"
    for column in ("inputs", "labels"):
        official = np.load(npy / f"all__{column}.npy")
        assert _parquet_tokens(out / "train.parquet", column).tobytes() == official.tobytes()
