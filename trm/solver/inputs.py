"""What `trm solve` hands the model and how it says the input is wrong: the ``Puzzles`` a reader returns, the task
a model solves (``task_of_model``), the error type of bad input, and whether a source is a path or literal text."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np

from trm.data.arc import ARC_VOCAB, MAX_GRID
from trm.data.augment import SUDOKU_BOX_SHAPES
from trm.data.errors import DataError
from trm.data.maze import MAZE_VOCAB
from trm.errors import UsageError

Task = Literal["sudoku", "maze", "arc"]
TASKS: tuple[Task, ...] = ("sudoku", "maze", "arc")
PATH_SUFFIXES = (".csv", ".txt", ".json")
LONGEST_PATH = 4096  # a longer single-line source is literal text, never a file name


class PuzzleInputError(DataError, UsageError):
    """Bad puzzle input handed to `trm solve`: a ``DataError`` (file, row or task, what is wrong) that the command
    reports like any bad parameter (exit 2). ``unit`` names what ``row`` counts when it is not a CSV data row
    ("line" of a text file, "puzzle" of literal text)."""

    def __init__(self, file: str | Path | None, row: int | str | None, message: str, unit: str | None = None) -> None:
        self.unit = unit  # set first: DataError.__init__ formats the message with it
        super().__init__(file, row, message)

    def __str__(self) -> str:
        if self.unit is None or self.row is None:
            return super().__str__()
        where = self.file if self.file is not None else "<input>"
        return f"{where}, {self.unit} {self.row}: {self.message}"

    def __reduce__(self):  # keep the four fields when the error crosses a process boundary
        return (type(self), (self.file, self.row, self.message, self.unit))


@contextmanager
def as_input_error(
    locations: Sequence[int | str | None] | None = None, unit: str | None = None, length_note: str | None = None
) -> Iterator[None]:
    """Re-raise a dataset reader's ``DataError`` as a ``PuzzleInputError``. With ``locations`` its integer row (the
    1-based position in the arrays the reader was given) is translated to ``locations[row - 1]`` counted in ``unit``
    (a file's line). ``length_note`` (what the model expects) is added to a complaint about a puzzle's length."""
    try:
        yield
    except PuzzleInputError:
        raise
    except DataError as error:
        row, where, message = error.row, None, error.message
        if locations is not None and isinstance(row, int) and 1 <= row <= len(locations):
            row, where = locations[row - 1], unit
        if length_note and "characters, expected" in message:
            message = f"{message}; {length_note}"
        raise PuzzleInputError(error.file, row, message, where if row is not None else None) from error


class ModelKind(NamedTuple):
    task: Task
    grid_shape: tuple[int, int]


def _hinted_task(hint: str | None) -> Task | None:
    """The task a hint names: a task name, or a dataset / preset name that contains one ("sudoku-4x4")."""
    if not hint:
        return None
    lowered = hint.lower()
    named = [task for task in TASKS if task in lowered]
    return named[0] if len(named) == 1 else None


def _candidates(seq_len: int, vocab_size: int) -> list[ModelKind]:
    kinds: list[ModelKind] = []
    if vocab_size == len(ARC_VOCAB) and seq_len == MAX_GRID * MAX_GRID:
        kinds.append(ModelKind("arc", (MAX_GRID, MAX_GRID)))
    side = math.isqrt(max(seq_len, 0))
    if vocab_size == len(MAZE_VOCAB) and side * side == seq_len and side >= 2:
        kinds.append(ModelKind("maze", (side, side)))
    size = vocab_size - 2
    if size in SUDOKU_BOX_SHAPES and seq_len == size * size:
        kinds.append(ModelKind("sudoku", (size, size)))
    return kinds


def task_of_model(
    seq_len: int, vocab_size: int, hint: str | None = None, grid_shape: Sequence[int] | None = None
) -> ModelKind:
    """The task and grid of a model from its vocabulary and sequence length (docs/architecture.md, Contract 1):
    vocab 12 and 900 tokens -> ARC 30x30; vocab 6 -> a square maze; vocab N+2 and N*N tokens -> N x N Sudoku
    (N in 4, 6, 9). ``hint`` (a task name or a dataset name such as the config's ``data.name``) settles the one
    ambiguous case, a 4x4 Sudoku and a 4x4 maze (vocab 6, 16 tokens); ``grid_shape`` (the dataset's) allows a
    non-square maze. Anything else is a ``UsageError``."""
    hinted = _hinted_task(hint)
    if grid_shape is not None and hinted == "maze" and vocab_size == len(MAZE_VOCAB):
        rows, cols = (int(x) for x in grid_shape)
        if rows * cols == seq_len:
            return ModelKind("maze", (rows, cols))
    kinds = _candidates(seq_len, vocab_size)
    if hinted is not None:
        kinds = [kind for kind in kinds if kind.task == hinted] or kinds
    if len(kinds) == 1:
        return kinds[0]
    if not kinds:
        raise UsageError(
            f"a model with vocab_size {vocab_size} and seq_len {seq_len} solves no known puzzle: expected vocab 12 "
            "and seq_len 900 (ARC), vocab 6 and a square seq_len (maze), or vocab N+2 and seq_len N*N with N in "
            f"{sorted(SUDOKU_BOX_SHAPES)} (Sudoku)"
        )
    names = " or ".join(f"{k.task} {k.grid_shape[0]}x{k.grid_shape[1]}" for k in kinds)
    raise UsageError(f"a model with vocab_size {vocab_size} and seq_len {seq_len} may be {names}; name the task")


@dataclass
class ArcRecord:
    """How the ARC rows of a ``Puzzles`` map back to their tasks: per row (N) the task, test input and augmentation
    (``augmented = dihedral(colour_map[original])``), per group (G: one test input) the given output."""

    task_ids: list[str]  # [N]
    test_index: np.ndarray  # int32 [N] position of the test input in its task's "test" list
    dihedral: np.ndarray  # int8 [N] 0..7
    colour_map: np.ndarray  # uint8 [N, 10], colour_map[0] == 0
    variant_names: list[str]  # [N] ArcVariant.name(task id): the puzzle identifier's name
    outputs: list[np.ndarray | None]  # [G] the given output grid of each test input, None when not given


@dataclass
class Puzzles:
    """Puzzles as model tokens. Rows of one group are the copies of one puzzle the answers vote over (ARC: the
    augmented variants of one test input; Sudoku and Maze: one row per group)."""

    task: Task
    grid_shape: tuple[int, int]
    names: list[str]  # [N] where each row comes from: "file.csv:row 3", "puzzle 1", "taskid/test 0"
    inputs: np.ndarray  # uint8 [N, L]
    labels: np.ndarray | None  # uint8 [N, L] the given solutions; None when no row has one
    has_label: np.ndarray  # bool [N]
    puzzle_identifiers: np.ndarray  # int32 [N]; 0 = the blank identifier
    group: np.ndarray  # int64 [N] group of each row, 0..G-1, rows of a group contiguous
    arc: ArcRecord | None = None

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    @property
    def num_groups(self) -> int:
        return int(self.group.max()) + 1 if len(self) else 0


def one_row_per_group(
    task: Task,
    grid_shape: tuple[int, int],
    names: list[str],
    inputs: np.ndarray,
    labels: np.ndarray | None,
    has_label: np.ndarray | None = None,
) -> Puzzles:
    """Sudoku / Maze puzzles: each row its own group, blank puzzle identifiers."""
    n = inputs.shape[0]
    mask = np.ones(n, bool) if has_label is None else np.asarray(has_label, bool)
    if labels is None or not mask.any():
        labels, mask = None, np.zeros(n, bool)
    return Puzzles(
        task=task,
        grid_shape=grid_shape,
        names=names,
        inputs=np.ascontiguousarray(inputs, np.uint8),
        labels=None if labels is None else np.ascontiguousarray(labels, np.uint8),
        has_label=mask,
        puzzle_identifiers=np.zeros(n, np.int32),
        group=np.arange(n, dtype=np.int64),
    )


def existing_path(source: str | Path) -> Path | None:
    """The file or folder ``source`` names, or None when it is literal text (a puzzle written out). A ``Path``, or
    a single-line string that looks like a file name (a known suffix or a '/'), must exist."""
    if isinstance(source, Path):
        if not source.exists():
            raise PuzzleInputError(source, None, "file not found")
        return source
    text = str(source)
    if "\n" in text or len(text) > LONGEST_PATH or not text.strip():
        return None
    candidate = Path(text).expanduser()
    try:
        if candidate.exists():
            return candidate
    except (OSError, ValueError):  # a name the filesystem refuses: literal text
        return None
    if candidate.suffix.lower() in PATH_SUFFIXES or "/" in text:
        raise PuzzleInputError(text, None, "file not found")
    return None


def read_text(path: Path) -> str:
    """A text file's content; a folder, an unreadable or a non-UTF-8 file is a ``PuzzleInputError``."""
    if path.is_dir():
        raise PuzzleInputError(path, None, "is a folder; expected a file or the puzzle itself")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise PuzzleInputError(path, None, f"not a UTF-8 text file ({error.reason} at byte {error.start})") from None
    except OSError as error:
        raise PuzzleInputError(path, None, f"unreadable: {error.strerror or error}") from None
