"""Maze source: the HRM CSV layout (question = grid of ``#``, `` ``, ``S``, ``G``; answer = the same plus ``o`` on
the path), validated (every label a shortest S->G path) and tokenised like the official builder (0 PAD, 1 ``#``,
2 space, 3 ``S``, 4 ``G``, 5 ``o``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trm.data.errors import DataError
from trm.data.maze_solver import GOAL, OPEN, PATH, START, shortest_path_problem
from trm.data.sudoku import _fixed_width, _read_table

MAZE_VOCAB = ["<pad>", "#", " ", "S", "G", "o"]
_LUT = np.full(256, 255, np.uint8)
for _token, _char in enumerate(MAZE_VOCAB[1:], start=1):
    _LUT[ord(_char)] = _token


@dataclass
class MazeRows:
    path: Path
    rows: int
    cols: int
    inputs: np.ndarray  # uint8 tokens [n, rows*cols]
    labels: np.ndarray  # uint8 tokens [n, rows*cols]
    row_numbers: np.ndarray  # int64, 1-based data row in the CSV

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def take(self, index: np.ndarray) -> MazeRows:
        return MazeRows(
            self.path, self.rows, self.cols, self.inputs[index], self.labels[index], self.row_numbers[index]
        )


def _shape_of(path: Path, first_len: int, rows: int | None, cols: int | None) -> tuple[int, int]:
    if rows is not None and cols is not None:
        return rows, cols
    if rows is not None or cols is not None:
        side = rows if rows is not None else cols
        assert side is not None
        if first_len % side:
            raise DataError(path, 1, f"maze has {first_len} cells, not a multiple of {side}")
        other = first_len // side
        return (side, other) if rows is not None else (other, side)
    side = math.isqrt(first_len)
    if side * side != first_len:
        raise DataError(path, 1, f"maze has {first_len} cells, not a square grid (pass rows and cols)")
    return side, side


def _tokens(path: Path, chars: np.ndarray, allowed: str, what: str) -> np.ndarray:
    tokens = _LUT[chars]
    ok = np.zeros(256, bool)
    ok[[ord(c) for c in allowed]] = True
    bad = ~ok[chars]
    bad_rows = np.flatnonzero(bad.any(axis=1))
    if bad_rows.size:
        r = int(bad_rows[0])
        pos = int(np.argmax(bad[r]))
        raise DataError(
            path,
            r + 1,
            f"{what} has character {chr(chars[r, pos])!r} at cell {pos} "
            f"(allowed: {' '.join(repr(c) for c in allowed)})",
        )
    return tokens


def read_maze_csv(
    path: str | Path, rows: int | None = None, cols: int | None = None, check_paths: bool = True
) -> MazeRows:
    """Read and validate an HRM-layout maze CSV. Without ``rows``/``cols`` the mazes must be square."""
    path = Path(path)
    table = _read_table(path)
    questions = table.column("question")
    if table.num_rows == 0:
        raise DataError(path, None, "no mazes in file")
    first_len = len(questions[0].as_py().encode())
    rows, cols = _shape_of(path, first_len, rows, cols)
    cells = rows * cols
    inputs = _tokens(path, _fixed_width(path, questions, cells, "question"), "# SG", "question")
    labels = _tokens(path, _fixed_width(path, table.column("answer"), cells, "answer"), "# SGo", "answer")
    validate_mazes(path, inputs, labels, rows, cols, check_paths)
    return MazeRows(
        path,
        rows,
        cols,
        np.ascontiguousarray(inputs),
        np.ascontiguousarray(labels),
        np.arange(1, table.num_rows + 1, dtype=np.int64),
    )


def validate_mazes(
    path: Path, inputs: np.ndarray, labels: np.ndarray, rows: int, cols: int, check_paths: bool = True
) -> None:
    """Exactly one S and one G; label = input except ``o`` on open cells; ``o`` cells = a shortest S->G path."""
    for token, name in ((START, "S"), (GOAL, "G")):
        counts = (inputs == token).sum(axis=1)
        bad = np.flatnonzero(counts != 1)
        if bad.size:
            r = int(bad[0])
            raise DataError(path, r + 1, f"maze must have exactly one {name}, found {int(counts[r])}")
    path_cells = labels == PATH
    differs = (labels != inputs) & ~path_cells
    bad = np.flatnonzero(differs.any(axis=1))
    if bad.size:
        r = int(bad[0])
        cell = int(np.argmax(differs[r]))
        raise DataError(
            path,
            r + 1,
            f"label differs from the input at (row {cell // cols}, col {cell % cols}) other than by an 'o' path cell",
        )
    off_open = path_cells & (inputs != OPEN)
    bad = np.flatnonzero(off_open.any(axis=1))
    if bad.size:
        r = int(bad[0])
        cell = int(np.argmax(off_open[r]))
        raise DataError(
            path, r + 1, f"path cell 'o' at (row {cell // cols}, col {cell % cols}) is not open in the input"
        )
    if check_paths:
        for r in range(inputs.shape[0]):
            problem = shortest_path_problem(inputs[r], labels[r], rows, cols)
            if problem is not None:
                raise DataError(path, r + 1, f"label is not a shortest S->G path: {problem}")
