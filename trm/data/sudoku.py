"""Sudoku source: the HRM CSV layout (``source,question,answer,rating``), read vectorised (the full Sudoku-Extreme
train CSV has 3.8M rows), validated with errors naming file and 1-based data row, and its tokenisation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from trm.data.augment import SUDOKU_BOX_SHAPES
from trm.data.errors import DataError

CSV_COLUMNS = ("source", "question", "answer", "rating")
CHECK_CHUNK = 200_000


@dataclass
class SudokuRows:
    """Puzzles as raw digits (0 blank, 1..N), flat row-major ``[n, N*N]``."""

    path: Path
    size: int
    questions: np.ndarray  # uint8
    answers: np.ndarray  # uint8
    ratings: np.ndarray  # int64, -1 where the CSV has no rating
    rows: np.ndarray  # int64, 1-based data row in the CSV

    def __len__(self) -> int:
        return int(self.questions.shape[0])

    def take(self, index: np.ndarray) -> SudokuRows:
        return SudokuRows(
            self.path, self.size, self.questions[index], self.answers[index], self.ratings[index], self.rows[index]
        )


def sudoku_tokens(digits: np.ndarray) -> np.ndarray:
    """Raw digits -> token ids (0 PAD, 1 blank, 2..N+1 digits), as the official builder (digit + 1)."""
    return (np.asarray(digits, np.uint8) + 1).astype(np.uint8)


def sudoku_vocab(size: int) -> list[str]:
    return ["<pad>", "<blank>", *[str(d) for d in range(1, size + 1)]]


def _read_table(path: Path) -> pa.Table:
    if not path.is_file():
        raise DataError(path, None, "file not found")
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=1 << 24),
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in CSV_COLUMNS}, strings_can_be_null=False
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError) as err:
        raise DataError(path, None, f"unreadable CSV: {err}") from err
    missing = [c for c in ("question", "answer") if c not in table.column_names]
    if missing:
        raise DataError(path, None, f"missing column(s) {missing}; expected header {','.join(CSV_COLUMNS)}")
    return table


def _fixed_width(path: Path, column: pa.ChunkedArray, width: int, what: str) -> np.ndarray:
    """A string column whose every value has ``width`` bytes -> uint8 [n, width] (one copy, no Python loop)."""
    lengths = pc.binary_length(column).to_numpy(zero_copy_only=False)
    bad = np.flatnonzero(lengths != width)
    if bad.size:
        r = int(bad[0])
        raise DataError(path, r + 1, f"{what} has {int(lengths[r])} characters, expected {width}")
    if len(column) == 0:
        return np.zeros((0, width), np.uint8)
    arr = pa.concat_arrays(column.chunks) if column.num_chunks != 1 else column.chunk(0)
    offsets = np.frombuffer(arr.buffers()[1], np.int32)[arr.offset : arr.offset + len(arr) + 1]
    data = np.frombuffer(arr.buffers()[2], np.uint8)[offsets[0] : offsets[-1]]
    return data.reshape(len(arr), width)


def _digits(path: Path, chars: np.ndarray, allowed_blank: bytes, size: int, what: str) -> np.ndarray:
    lut = np.full(256, 255, np.uint8)
    for d in range(1, size + 1):
        lut[ord(str(d))] = d
    for ch in allowed_blank:
        lut[ch] = 0
    digits = lut[chars]
    bad_rows = np.flatnonzero((digits == 255).any(axis=1))
    if bad_rows.size:
        r = int(bad_rows[0])
        pos = int(np.argmax(digits[r] == 255))
        allowed = "".join(sorted(allowed_blank.decode())) + f" 1-{size}" if allowed_blank else f"1-{size}"
        raise DataError(
            path, r + 1, f"{what} has character {chr(chars[r, pos])!r} at cell {pos} (allowed: {allowed.strip()})"
        )
    return digits


def rule_violation(answer: np.ndarray, size: int) -> str | None:
    """First Sudoku rule broken by a complete grid (row/column/box with a repeated digit), or None."""
    box_r, box_c = SUDOKU_BOX_SHAPES[size]
    g = np.asarray(answer).reshape(size, size)
    for r in range(size):
        if len(set(g[r].tolist())) != size:
            return f"answer repeats a digit in row {r + 1}"
    for c in range(size):
        if len(set(g[:, c].tolist())) != size:
            return f"answer repeats a digit in column {c + 1}"
    for b in range(size):
        r0, c0 = (b // (size // box_c)) * box_r, (b % (size // box_c)) * box_c
        if len(set(g[r0 : r0 + box_r, c0 : c0 + box_c].reshape(-1).tolist())) != size:
            return f"answer repeats a digit in box {b + 1}"
    return None


def invalid_rows(answers: np.ndarray, size: int) -> np.ndarray:
    """Boolean mask of complete grids ``[n, N*N]`` that break a row, column or box rule (vectorised)."""
    box_r, box_c = SUDOKU_BOX_SHAPES[size]
    target = np.arange(1, size + 1, dtype=np.uint8)
    bad = np.zeros(answers.shape[0], bool)
    for start in range(0, answers.shape[0], CHECK_CHUNK):
        g = answers[start : start + CHECK_CHUNK].reshape(-1, size, size)
        n = g.shape[0]
        rows_ok = (np.sort(g, axis=2) == target).all(axis=(1, 2))
        cols_ok = (np.sort(g, axis=1) == target[:, None]).all(axis=(1, 2))
        boxes = g.reshape(n, size // box_r, box_r, size // box_c, box_c).transpose(0, 1, 3, 2, 4).reshape(n, size, size)
        boxes_ok = (np.sort(boxes, axis=2) == target).all(axis=(1, 2))
        bad[start : start + n] = ~(rows_ok & cols_ok & boxes_ok)
    return bad


def validate_sudoku(path: Path, questions: np.ndarray, answers: np.ndarray, size: int, rows: np.ndarray) -> None:
    """Reject answers that are incomplete, break the rules, or contradict the question's clues."""
    incomplete = np.flatnonzero((answers == 0).any(axis=1))
    if incomplete.size:
        r = int(incomplete[0])
        raise DataError(path, int(rows[r]), f"answer has a blank at cell {int(np.argmax(answers[r] == 0))}")
    conflict = np.flatnonzero(((questions != 0) & (questions != answers)).any(axis=1))
    if conflict.size:
        r = int(conflict[0])
        cell = int(np.argmax((questions[r] != 0) & (questions[r] != answers[r])))
        raise DataError(
            path,
            int(rows[r]),
            f"answer contradicts the clue at cell {cell} (row {cell // size + 1}, "
            f"column {cell % size + 1}): clue {questions[r, cell]}, answer {answers[r, cell]}",
        )
    broken = np.flatnonzero(invalid_rows(answers, size))
    if broken.size:
        r = int(broken[0])
        raise DataError(path, int(rows[r]), rule_violation(answers[r], size) or "answer breaks the Sudoku rules")


def read_sudoku_csv(
    path: str | Path, size: int = 9, min_difficulty: int | None = None, validate: bool = True
) -> SudokuRows:
    """Read and validate an HRM-layout Sudoku CSV of N x N puzzles (N in 4, 6, 9).

    ``min_difficulty`` keeps rows with ``rating >= min_difficulty`` (as the official builder); a row without a
    rating is then an error. Validation of the rules runs on the kept rows only.
    """
    path = Path(path)
    if size not in SUDOKU_BOX_SHAPES:
        raise ValueError(f"Sudoku size must be one of {sorted(SUDOKU_BOX_SHAPES)}, got {size}")
    table = _read_table(path)
    cells = size * size
    q_chars = _fixed_width(path, table.column("question"), cells, "question")
    a_chars = _fixed_width(path, table.column("answer"), cells, "answer")
    questions = _digits(path, q_chars, b".0", size, "question")
    answers = _digits(path, a_chars, b"", size, "answer")
    ratings = _ratings(path, table)
    rows = np.arange(1, table.num_rows + 1, dtype=np.int64)
    if min_difficulty is not None:
        missing = np.flatnonzero(ratings < 0)
        if missing.size:
            raise DataError(path, int(missing[0]) + 1, "no rating, but a min_difficulty filter was requested")
        keep = np.flatnonzero(ratings >= min_difficulty)
        questions, answers, ratings, rows = questions[keep], answers[keep], ratings[keep], rows[keep]
    if validate:
        validate_sudoku(path, questions, answers, size, rows)
    return SudokuRows(path, size, np.ascontiguousarray(questions), np.ascontiguousarray(answers), ratings, rows)


def _ratings(path: Path, table: pa.Table) -> np.ndarray:
    if "rating" not in table.column_names:
        return np.full(table.num_rows, -1, np.int64)
    text = table.column("rating").to_numpy(zero_copy_only=False)
    out = np.full(len(text), -1, np.int64)
    present = np.flatnonzero(text != "")
    if present.size:
        try:
            out[present] = np.asarray(text[present], dtype=np.float64).astype(np.int64)
        except ValueError:
            for i in present:
                try:
                    float(text[i])
                except ValueError:
                    raise DataError(path, int(i) + 1, f"rating {text[i]!r} is not a number") from None
    return out


def subsample(rows: SudokuRows, size: int | None, seed: int) -> SudokuRows:
    """Seeded version of the official ``--subsample-size``: ``size`` distinct rows (kept in file order), or all
    rows when ``size`` is None or not smaller than the file."""
    if size is None or size >= len(rows):
        return rows
    chosen = np.sort(np.random.default_rng(seed).choice(len(rows), size=size, replace=False))
    return rows.take(chosen)
