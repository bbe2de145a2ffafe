"""User input -> model tokens for `trm solve`: a Sudoku (literal text, a text file with one puzzle per line or one
grid per paragraph, or an HRM CSV), a maze (text grids in a file or literal text, or the HRM maze CSV) or ARC tasks
(``trm.solver.arc_tasks``). Everything is checked by the dataset readers (``trm.data.sudoku``, ``trm.data.maze``,
``trm.data.arc``), so a bad puzzle gets the same clear error as a bad dataset file, raised as a
``PuzzleInputError`` naming the file and its row / line / task."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from trm.data.arc import MAX_GRID
from trm.data.augment import SUDOKU_BOX_SHAPES
from trm.data.maze import _tokens as maze_tokens
from trm.data.maze import read_maze_csv, validate_mazes
from trm.data.maze_solver import OPEN, PATH
from trm.data.sudoku import _digits as sudoku_digits
from trm.data.sudoku import read_sudoku_csv, sudoku_tokens
from trm.errors import UsageError
from trm.solver.arc_tasks import read_arc_tasks
from trm.solver.inputs import (
    TASKS,
    ArcRecord,
    ModelKind,
    PuzzleInputError,
    Puzzles,
    as_input_error,
    existing_path,
    one_row_per_group,
    read_text,
    task_of_model,
)

__all__ = [
    "ArcRecord",
    "ModelKind",
    "PuzzleInputError",
    "Puzzles",
    "read_arc_tasks",
    "read_mazes",
    "read_puzzles",
    "read_sudoku",
    "task_of_model",
]

SUDOKU_DECORATION = str.maketrans("", "", " \t|-+")  # grid drawing a Sudoku may be written with
Line = tuple[int, str]  # (1-based line number, text)


def read_puzzles(
    source: str | Path,
    task: str,
    grid_shape: Sequence[int],
    *,
    num_variants: int = 8,
    seed: int = 0,
    identifiers: Sequence[str] | None = None,
    task_ids: Sequence[str] | None = None,
) -> Puzzles:
    """The puzzles of ``source`` (a file, a folder for ARC, or the puzzle written out) for a model of ``task`` and
    ``grid_shape`` (``task_of_model``). The keyword options are ARC's (``read_arc_tasks``)."""
    shape = (int(grid_shape[0]), int(grid_shape[1]))
    if task == "sudoku":
        if shape[0] != shape[1] or shape[0] not in SUDOKU_BOX_SHAPES:
            raise UsageError(f"no {shape[0]}x{shape[1]} Sudoku: sizes {sorted(SUDOKU_BOX_SHAPES)} are supported")
        return read_sudoku(source, shape[0])
    if task == "maze":
        return read_mazes(source, shape)
    if task == "arc":
        if shape != (MAX_GRID, MAX_GRID):
            raise UsageError(f"ARC puzzles live on a {MAX_GRID}x{MAX_GRID} canvas, not {shape[0]}x{shape[1]}")
        return read_arc_tasks(source, num_variants, seed, identifiers, task_ids)
    raise UsageError(f"unknown task {task!r}; expected one of {list(TASKS)}")


# ---------------------------------------------------------------------------------------------------- text layout
def text_blocks(text: str, is_blank: Callable[[str], bool]) -> list[list[Line]]:
    """Paragraphs of ``text``: runs of lines separated by blank lines, each line with its 1-based number."""
    blocks: list[list[Line]] = [[]]
    for number, line in enumerate(text.splitlines(), start=1):
        if is_blank(line):
            blocks.append([])
        else:
            blocks[-1].append((number, line))
    return [block for block in blocks if block]


def _ascii_cells(file: Path | None, where: int | None, unit: str, cells: str, what: str) -> bytes:
    """The cells as bytes, one per cell; a non-ASCII character is an error naming its cell."""
    if not cells.isascii():
        cell = next(i for i, ch in enumerate(cells) if not ch.isascii())
        raise PuzzleInputError(file, where, f"{what} has character {cells[cell]!r} at cell {cell}", unit)
    return cells.encode("ascii")


def _located(path: Path | None, numbers: list[int], lines_of_text: int) -> list[int | None]:
    """Where each puzzle is reported: its line in a file or in multi-line text; nothing for one line of text."""
    return [None if path is None and lines_of_text == 1 else n for n in numbers]


def _names(path: Path | None, numbers: list[int]) -> list[str]:
    if path is None:
        return [f"puzzle {i + 1}" for i in range(len(numbers))]
    return [f"{path.name}:line {n}" for n in numbers]


# ---------------------------------------------------------------------------------------------------- sudoku
def read_sudoku(source: str | Path, size: int) -> Puzzles:
    """Sudoku puzzles of ``size`` x ``size``: an HRM CSV (``source,question,answer,rating``; the answers become
    labels), or text (a file or the puzzle itself) with one puzzle per line or one grid per paragraph. Cells are
    '.' or '0' (blank) and the digits 1..size; spaces and grid drawing ('|', '-', '+') are ignored, and so are
    lines starting with '#'."""
    path = existing_path(source)
    if path is not None and path.suffix.lower() == ".csv":
        return _sudoku_csv(path, size)
    text = read_text(path) if path is not None else str(source)
    cells = size * size
    entries = _sudoku_entries(text, cells, size, path)
    if not entries:
        raise PuzzleInputError(path, None, f"no Sudoku puzzle found (expected {cells} cells per puzzle)")
    numbers = [n for n, _ in entries]
    where = _located(path, numbers, len(text.strip().splitlines()))
    chars = np.frombuffer(
        b"".join(_ascii_cells(path, w, "line", c, "puzzle") for w, (_, c) in zip(where, entries, strict=True)),
        np.uint8,
    ).reshape(len(entries), cells)
    with as_input_error(where, "line"):
        digits = sudoku_digits(path or Path("<input>"), chars, b".0", size, "puzzle")
    return one_row_per_group("sudoku", (size, size), _names(path, numbers), sudoku_tokens(digits), None)


def _sudoku_entries(text: str, cells: int, size: int, path: Path | None) -> list[Line]:
    """(first line, cells) of every puzzle: a paragraph with a line of ``cells`` cells holds one puzzle per line,
    any other paragraph is one puzzle drawn as a grid."""
    entries: list[Line] = []
    by_line = path is not None or len(text.strip().splitlines()) > 1
    for block in text_blocks(text, lambda line: not line.strip() or line.lstrip().startswith("#")):
        cleaned = [(n, line.translate(SUDOKU_DECORATION)) for n, line in block]
        cleaned = [(n, c) for n, c in cleaned if c]  # lines of drawing only
        if not cleaned:
            continue
        per_line = any(len(c) == cells for _, c in cleaned)  # else the paragraph is one puzzle drawn as a grid
        puzzles = cleaned if per_line else [(cleaned[0][0], "".join(c for _, c in cleaned))]
        for number, puzzle in puzzles:
            if len(puzzle) != cells:
                raise PuzzleInputError(
                    path,
                    number if by_line else None,
                    f"puzzle has {len(puzzle)} cells, expected {cells} for the model's {size}x{size} Sudoku "
                    "('.' or '0' for a blank)",
                    "line" if by_line else None,
                )
        entries.extend(puzzles)
    return entries


def _sudoku_csv(path: Path, size: int) -> Puzzles:
    with as_input_error(length_note=f"the model solves {size}x{size} Sudoku ({size * size} cells)"):
        rows = read_sudoku_csv(path, size=size)
    if len(rows) == 0:
        raise PuzzleInputError(path, None, "no puzzles in file")
    names = [f"{path.name}:row {int(r)}" for r in rows.rows]
    return one_row_per_group("sudoku", (size, size), names, sudoku_tokens(rows.questions), sudoku_tokens(rows.answers))


# ---------------------------------------------------------------------------------------------------- maze
def read_mazes(source: str | Path, grid_shape: tuple[int, int]) -> Puzzles:
    """Mazes of ``grid_shape``: the HRM maze CSV (answers become labels), or text grids (a file or the mazes
    themselves) of '#' wall, ' ' open, 'S', 'G', one maze per paragraph (paragraphs end at an empty line), or one
    maze per line in the CSV's flat layout. A maze drawn with its 'o' path is its own label (the input has the
    path cells open)."""
    path = existing_path(source)
    if path is not None and path.suffix.lower() == ".csv":
        return _maze_csv(path, grid_shape)
    text = read_text(path) if path is not None else str(source)
    grids = [_maze_grid(path, block, grid_shape) for block in text_blocks(text, lambda line: line == "")]
    if not grids:
        raise PuzzleInputError(path, None, "no maze found")
    numbers = [n for n, _ in grids]
    where = _located(path, numbers, len(text.strip("\n").splitlines()))
    chars = np.frombuffer(b"".join(cells for _, cells in grids), np.uint8).reshape(len(grids), -1)
    with as_input_error(where, "line"):
        tokens = maze_tokens(path or Path("<input>"), chars, "# SGo", "maze")
    inputs = np.where(tokens == PATH, OPEN, tokens).astype(np.uint8)
    has_label = (tokens == PATH).any(axis=1)
    for subset, check_paths in ((has_label, True), (~has_label, False)):
        rows = np.flatnonzero(subset)
        with as_input_error([where[r] for r in rows], "line"):
            labels = tokens[rows] if check_paths else inputs[rows]
            validate_mazes(path or Path("<input>"), inputs[rows], labels, *grid_shape, check_paths=check_paths)
    return one_row_per_group("maze", grid_shape, _names(path, numbers), inputs, tokens, has_label)


def _maze_grid(path: Path | None, block: list[Line], grid_shape: tuple[int, int]) -> tuple[int, bytes]:
    """(first line, cells) of one maze paragraph, checked to be a ``grid_shape`` grid."""
    rows, cols = grid_shape
    first = block[0][0]
    lines = [line for _, line in block]
    if len(lines) == 1 and len(lines[0]) == rows * cols:  # the CSV's flat layout
        return first, _ascii_cells(path, first, "line", lines[0], "maze")
    for number, line in block:
        if len(line) != len(lines[0]):
            raise PuzzleInputError(
                path, number, f"maze row has {len(line)} characters, its first row {len(lines[0])}", "line"
            )
    if (len(lines), len(lines[0])) != (rows, cols):
        raise PuzzleInputError(
            path, first, f"maze is {len(lines)}x{len(lines[0])}, the model solves {rows}x{cols} mazes", "line"
        )
    return first, _ascii_cells(path, first, "line", "".join(lines), "maze")


def _maze_csv(path: Path, grid_shape: tuple[int, int]) -> Puzzles:
    rows, cols = grid_shape
    with as_input_error(length_note=f"the model solves {rows}x{cols} mazes ({rows * cols} cells)"):
        mazes = read_maze_csv(path, rows=rows, cols=cols)
    names = [f"{path.name}:row {int(r)}" for r in mazes.row_numbers]
    return one_row_per_group("maze", grid_shape, names, mazes.inputs, mazes.labels)
