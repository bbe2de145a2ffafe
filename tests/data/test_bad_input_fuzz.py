"""Hypothesis-generated corrupt inputs: every corruption below is invalid by construction, and the readers must
reject it with a DataError that names the file and the row / task; a build from it must leave no output."""

from __future__ import annotations

import csv
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trm.data.arc import load_json_folder
from trm.data.build import build_dataset
from trm.data.errors import DataError
from trm.data.maze import read_maze_csv
from trm.data.sudoku import read_sudoku_csv

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
BAD_CHARS = st.sampled_from([c for c in map(chr, range(32, 127)) if not c.isdigit() and c != "."] + ["\t", "é"])


def _rows(path: Path, count: int) -> list[tuple[str, str]]:
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        return [(r["question"], r["answer"]) for _, r in zip(range(count), reader, strict=False)]


def _write(path: Path, rows: list[tuple[str, str]]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["source", "question", "answer", "rating"])
        writer.writerows(["", q, a, ""] for q, a in rows)
    return path


@pytest.fixture(scope="module")
def sudoku_rows(shared_datasets: Path) -> list[tuple[str, str]]:
    return _rows(shared_datasets / "sudoku-extreme-1k" / "train1k.csv", 4)


@pytest.fixture(scope="module")
def maze_rows(shared_datasets: Path) -> list[tuple[str, str]]:
    return _rows(shared_datasets / "maze-hard" / "train.csv", 3)


def _assert_names(err: DataError, path: Path, row: int | str | None) -> None:
    assert err.file == str(path)
    assert err.row == row
    assert path.name in str(err) and (row is None or str(row) in str(err)) and err.message


@FUZZ
@given(data=st.data(), kind=st.sampled_from(["length", "question_char", "answer_char", "answer_digit", "clue"]))
def test_corrupt_sudoku_rows_are_rejected(sudoku_rows: list[tuple[str, str]], data: st.DataObject, kind: str) -> None:
    index = data.draw(st.integers(0, len(sudoku_rows) - 1), label="row")
    q, a = sudoku_rows[index]
    pos = data.draw(st.integers(0, 80), label="cell")
    if kind == "length":
        cut = data.draw(st.integers(1, 5))
        if data.draw(st.booleans()):
            q = q[:pos] + q[pos + cut :] if pos + cut <= 81 else q[: 81 - cut]
        else:
            a = a[:pos] + "123456789"[:cut] + a[pos:]
    elif kind == "question_char":
        q = q[:pos] + data.draw(BAD_CHARS) + q[pos + 1 :]
    elif kind == "answer_char":
        a = a[:pos] + data.draw(st.sampled_from(["0", "."]) | BAD_CHARS) + a[pos + 1 :]
    elif kind == "answer_digit":
        a = a[:pos] + data.draw(st.sampled_from([d for d in "123456789" if d != a[pos]])) + a[pos + 1 :]
    else:
        clue = data.draw(st.sampled_from([i for i, c in enumerate(q) if c not in ".0"]))
        q = q[:clue] + data.draw(st.sampled_from([d for d in "123456789" if d != q[clue]])) + q[clue + 1 :]
    rows = list(sudoku_rows)
    rows[index] = (q, a)
    with tempfile.TemporaryDirectory() as tmp:
        path = _write(Path(tmp) / "corrupt.csv", rows)
        with pytest.raises(DataError) as info:
            read_sudoku_csv(path, size=9)
        _assert_names(info.value, path, index + 1)


@FUZZ
@given(
    data=st.data(),
    kind=st.sampled_from(
        ["length", "question_char", "answer_char", "drop_path", "extra_path", "no_start", "extra_goal", "open_wall"]
    ),
)
def test_corrupt_mazes_are_rejected(maze_rows: list[tuple[str, str]], data: st.DataObject, kind: str) -> None:
    index = data.draw(st.integers(0, len(maze_rows) - 1), label="row")
    q, a = maze_rows[index]

    def cell(chars: str, where: str) -> int:
        return data.draw(st.sampled_from([i for i, c in enumerate(where) if c in chars]))

    if kind == "length":
        pos = data.draw(st.integers(0, 899))
        q, a = q[:pos] + q[pos + 1 :], a[:pos] + a[pos + 1 :]
    elif kind == "question_char":
        pos = data.draw(st.integers(0, 899))
        q = q[:pos] + data.draw(st.sampled_from("o.x0@") | BAD_CHARS.filter(lambda c: c not in "# SG")) + q[pos + 1 :]
    elif kind == "answer_char":
        pos = data.draw(st.integers(0, 899))
        a = a[:pos] + data.draw(BAD_CHARS.filter(lambda c: c not in "# SGo")) + a[pos + 1 :]
    elif kind == "drop_path":
        pos = cell("o", a)
        a = a[:pos] + " " + a[pos + 1 :]
    elif kind == "extra_path":
        pos = cell(" ", a)
        a = a[:pos] + "o" + a[pos + 1 :]
    elif kind == "no_start":
        pos = q.index("S")
        q = q[:pos] + " " + q[pos + 1 :]
    elif kind == "extra_goal":
        pos = cell(" ", a)
        q = q[:pos] + "G" + q[pos + 1 :]
    else:
        pos = cell("#", q)
        q = q[:pos] + " " + q[pos + 1 :]
    rows = list(maze_rows)
    rows[index] = (q, a)
    with tempfile.TemporaryDirectory() as tmp:
        path = _write(Path(tmp) / "corrupt.csv", rows)
        with pytest.raises(DataError) as info:
            read_maze_csv(path)
        _assert_names(info.value, path, index + 1)
        out_root = Path(tmp) / "out"
        with pytest.raises(DataError):
            build_dataset("maze-hard-1k", {"train_csv": str(path), "test_csv": str(path)}, out_root=out_root)
        assert not out_root.exists() or not any(out_root.iterdir())


VALID_TASK = {
    "train": [
        {"input": [[1, 2, 0], [3, 4, 0]], "output": [[4, 3], [2, 1], [0, 0]]},
        {"input": [[5]], "output": [[6, 6]]},
    ],
    "test": [{"input": [[7, 8], [9, 0]], "output": [[0]]}],
}


@FUZZ
@given(
    data=st.data(), kind=st.sampled_from(["ragged", "colour", "drop_key", "oversize", "empty", "truncate", "not_int"])
)
def test_corrupt_arc_tasks_are_rejected(data: st.DataObject, kind: str) -> None:
    task = json.loads(json.dumps(VALID_TASK))
    pairs = [(k, i) for k in ("train", "test") for i in range(len(task[k]))]
    list_name, pair_i = data.draw(st.sampled_from(pairs), label="pair")
    side = data.draw(st.sampled_from(["input", "output"]), label="side")
    grid = task[list_name][pair_i][side]
    r = data.draw(st.integers(0, len(grid) - 1))
    c = data.draw(st.integers(0, len(grid[r]) - 1))
    text = None
    if kind == "ragged":
        if len(grid) > 1:
            grid[r].append(1) if data.draw(st.booleans()) else grid[r].pop()
        else:
            grid.append([1] * (len(grid[0]) + data.draw(st.integers(1, 3))))
    elif kind == "colour":
        grid[r][c] = data.draw(st.integers(10, 10**6) | st.integers(-(10**6), -1))
    elif kind == "drop_key":
        key = data.draw(st.sampled_from(["train", "test", "input", "output"]))
        if key in ("train", "test"):
            del task[key]
        else:
            del task[list_name][pair_i][key]
    elif kind == "oversize":
        rows, cols = data.draw(st.sampled_from([(31, 1), (1, 31), (40, 40), (31, 30)]))
        task[list_name][pair_i][side] = [[0] * cols for _ in range(rows)]
    elif kind == "empty":
        task[list_name][pair_i][side] = data.draw(st.sampled_from([[], [[]], [[], []]]))
    elif kind == "not_int":
        grid[r][c] = data.draw(st.sampled_from(["1", 1.5, None, True, [1], {"a": 1}]))
    else:
        full = json.dumps(task)
        text = full[: data.draw(st.integers(0, len(full) - 1))]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "aaaa0000.json").write_text(json.dumps(VALID_TASK))
        bad = folder / "bbbb1111.json"
        bad.write_text(text if text is not None else json.dumps(task))
        with pytest.raises(DataError) as info:
            load_json_folder(folder, "training")
        _assert_names(info.value, bad, None if kind == "truncate" else "bbbb1111")
