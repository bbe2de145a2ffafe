"""Maze CSV reader: any rows x cols with explicit shape, token ids of the official builder."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from trm.data.errors import DataError
from trm.data.maze import MAZE_VOCAB, read_maze_csv


def test_rectangular_mazes_need_an_explicit_shape(tmp_path: Path) -> None:
    question, answer = "S  ### G", "Soo###oG"
    path = tmp_path / "rect.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["source", "question", "answer", "rating"])
        writer.writerow(["", question, answer, ""])
    with pytest.raises(DataError, match="not a square grid"):
        read_maze_csv(path)
    mazes = read_maze_csv(path, rows=2, cols=4)
    assert (mazes.rows, mazes.cols) == (2, 4)
    assert "".join(MAZE_VOCAB[t] for t in mazes.labels[0]) == answer
    assert read_maze_csv(path, rows=2).cols == 4
    with pytest.raises(DataError, match="row 1: question has 8 characters, expected 6"):
        read_maze_csv(path, rows=2, cols=3)


def test_maze_tokens(shared_datasets: Path) -> None:
    mazes = read_maze_csv(shared_datasets / "maze-hard" / "test.csv", check_paths=False)
    assert mazes.inputs.dtype == np.uint8 and set(np.unique(mazes.inputs)) == {1, 2, 3, 4}
    assert set(np.unique(mazes.labels)) == {1, 2, 3, 4, 5}
    assert mazes.row_numbers[0] == 1 and len(mazes) == 1000
