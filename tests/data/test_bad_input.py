"""Every reader rejects bad input with a DataError naming the file, the row / task and what is wrong; a failed
build leaves nothing behind. Hand-written cases here; hypothesis-generated corruptions in test_bad_input_fuzz.py."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from trm.data.arc import load_json_folder, load_kaggle_subset
from trm.data.build import build_dataset
from trm.data.errors import DataError
from trm.data.maze import read_maze_csv
from trm.data.sudoku import read_sudoku_csv

# a valid 4x4 Sudoku (2x2 boxes) and a valid 4x4 maze whose label is the BFS shortest path
SUDOKU_Q, SUDOKU_A = "1.3.3.1..1.34..1", "1234341221434321"
MAZE_Q = "S  ### #    G# #"
MAZE_A = "Soo###o#ooo G# #"


def write_csv(
    path: Path, rows: list[tuple[str, str]], header: tuple[str, ...] = ("source", "question", "answer", "rating")
) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for q, a in rows:
            writer.writerow(["", q, a, ""][: len(header)] if len(header) == 4 else [q, a])
    return path


def test_valid_fixtures_are_valid(tmp_path: Path) -> None:
    rows = read_sudoku_csv(write_csv(tmp_path / "s.csv", [(SUDOKU_Q, SUDOKU_A)] * 2), size=4)
    assert len(rows) == 2
    mazes = read_maze_csv(write_csv(tmp_path / "m.csv", [(MAZE_Q, MAZE_A)]))
    assert (mazes.rows, mazes.cols) == (4, 4)


@pytest.mark.parametrize(
    ("question", "answer", "message"),
    [
        (SUDOKU_Q[:-1], SUDOKU_A, "question has 15 characters, expected 16"),
        (SUDOKU_Q, SUDOKU_A + "1", "answer has 17 characters, expected 16"),
        ("x" + SUDOKU_Q[1:], SUDOKU_A, "question has character 'x' at cell 0"),
        (SUDOKU_Q, "5" + SUDOKU_A[1:], "answer has character '5' at cell 0"),
        (SUDOKU_Q, "." + SUDOKU_A[1:], "answer has character '.' at cell 0"),
        ("2" + SUDOKU_Q[1:], SUDOKU_A, "answer contradicts the clue at cell 0"),
        ("." * 16, "1234341221434312", "answer repeats a digit in column 3"),
        ("." * 16, "1234123412341234", "answer repeats a digit in column 1"),
        ("." * 16, "1234234134124123", "answer repeats a digit in box 1"),
    ],
)
def test_bad_sudoku_rows(tmp_path: Path, question: str, answer: str, message: str) -> None:
    path = write_csv(tmp_path / "bad.csv", [(SUDOKU_Q, SUDOKU_A), (question, answer)])
    with pytest.raises(DataError) as info:
        read_sudoku_csv(path, size=4)
    assert (info.value.file, info.value.row) == (str(path), 2)
    assert message in info.value.message and "bad.csv, row 2" in str(info.value)


def test_bad_sudoku_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="missing column"):
        read_sudoku_csv(write_csv(tmp_path / "h.csv", [(SUDOKU_Q, SUDOKU_A)], header=("q", "a")), size=4)
    with pytest.raises(DataError, match="file not found"):
        read_sudoku_csv(tmp_path / "nope.csv", size=4)
    rated = tmp_path / "r.csv"
    rated.write_text(f"source,question,answer,rating\n,{SUDOKU_Q},{SUDOKU_A},3\n,{SUDOKU_Q},{SUDOKU_A},\n")
    assert len(read_sudoku_csv(rated, size=4)) == 2
    with pytest.raises(DataError, match=r"row 2.*no rating"):
        read_sudoku_csv(rated, size=4, min_difficulty=1)
    rated.write_text(f"source,question,answer,rating\n,{SUDOKU_Q},{SUDOKU_A},hard\n")
    with pytest.raises(DataError, match=r"row 1.*rating 'hard' is not a number"):
        read_sudoku_csv(rated, size=4)


@pytest.mark.parametrize(
    ("question", "answer", "message"),
    [
        (MAZE_Q[:-1], MAZE_A[:-1], "not a square grid"),
        (MAZE_Q, MAZE_A[:-1], "answer has 15 characters, expected 16"),
        ("S  ### ##  xG# #", MAZE_A, "question has character 'x' at cell 11"),
        ("S  ### ##   G#o#", MAZE_A, "question has character 'o'"),
        ("S  ### ##     # ", MAZE_A, "exactly one G, found 0"),
        ("S  ### ##  SG# #", MAZE_A, "exactly one S, found 2"),
        (MAZE_Q, "Soo###o#ooo#G# #", "label differs from the input at (row 2, col 3)"),
        (MAZE_Q, "Soo###o#ooooG# #", "label is not a shortest S->G path: path has 7 'o' cells"),
        (MAZE_Q, "Soo###o#oo oG# #", "label is not a shortest S->G path"),
        (MAZE_Q, "Soo##oo#ooo G# #", "path cell 'o' at (row 1, col 1) is not open"),
        (MAZE_Q, MAZE_Q, "label is not a shortest S->G path: path has 0 'o' cells"),
        ("S  ######   G# #", "S  ######   G# #", "not reachable"),
    ],
)
def test_bad_maze_rows(tmp_path: Path, question: str, answer: str, message: str) -> None:
    rows = [(MAZE_Q, MAZE_A), (question, answer)] if len(question) == 16 else [(question, answer)]
    path = write_csv(tmp_path / "maze.csv", rows)
    with pytest.raises(DataError) as info:
        read_maze_csv(path)
    assert info.value.file == str(path) and info.value.row == (2 if len(question) == 16 else 1)
    assert message in info.value.message


def _task(**changes: object) -> dict:
    task = {
        "train": [{"input": [[1, 2], [3, 4]], "output": [[4, 3], [2, 1]]}],
        "test": [{"input": [[0, 5]], "output": [[5, 0]]}],
    }
    task.update(changes)
    return task


@pytest.mark.parametrize(
    ("task", "message"),
    [
        (_task(train=[{"input": [[1, 2], [3]], "output": [[1]]}]), "train[0].input is ragged"),
        (_task(train=[{"input": [[1, 10]], "output": [[1]]}]), "colour 10, outside 0-9"),
        (_task(train=[{"input": [[1, -1]], "output": [[1]]}]), "colour -1, outside 0-9"),
        (_task(train=[{"input": [[1.5]], "output": [[1]]}]), "not an integer colour"),
        (_task(train=[{"input": [["1"]], "output": [[1]]}]), "not an integer colour"),
        (_task(train=[{"input": [[1, True]], "output": [[1]]}]), "not an integer colour"),
        (_task(train=[{"input": [[0] * 31], "output": [[1]]}]), "1x31, larger than 30x30"),
        (_task(train=[{"input": [[0]] * 31, "output": [[1]]}]), "31x1, larger than 30x30"),
        (_task(train=[{"input": [], "output": [[1]]}]), "train[0].input must be a non-empty list"),
        (_task(train=[{"input": [[]], "output": [[1]]}]), "train[0].input has empty rows"),
        (_task(train=[{"input": [[1]]}]), "train[0]: missing key 'output'"),
        (_task(test=[{"input": [[1]]}]), "test[0]: missing solution"),
        ({"train": [{"input": [[1]], "output": [[1]]}]}, "missing key 'test'"),
        (_task(train=[]), "'train' must be a non-empty list"),
    ],
)
def test_bad_arc_task_files(tmp_path: Path, task: dict, message: str) -> None:
    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "good0001.json").write_text(json.dumps(_task()))
    (folder / "bad00002.json").write_text(json.dumps(task))
    with pytest.raises(DataError) as info:
        load_json_folder(folder, "training")
    assert info.value.file == str(folder / "bad00002.json") and info.value.row == "bad00002"
    assert message in info.value.message and "task bad00002" in str(info.value)


def test_unreadable_arc_json_and_missing_kaggle_solutions(tmp_path: Path) -> None:
    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "broken.json").write_text('{"train": [')
    with pytest.raises(DataError, match=r"broken.json: unreadable JSON"):
        load_json_folder(folder, "training")
    challenges = {"aaa": {"train": _task()["train"], "test": [{"input": [[1]]}, {"input": [[2]]}]}}
    (tmp_path / "arc-agi_x_challenges.json").write_text(json.dumps(challenges))
    (tmp_path / "arc-agi_x_solutions.json").write_text(json.dumps({"bbb": [[[1]]]}))
    with pytest.raises(DataError, match=r"solutions.json, task aaa: missing solutions"):
        load_kaggle_subset(tmp_path, "x")
    (tmp_path / "arc-agi_x_solutions.json").write_text(json.dumps({"aaa": [[[1]]]}))
    with pytest.raises(DataError, match="task aaa: has 1 solutions for 2 test inputs"):
        load_kaggle_subset(tmp_path, "x")
    (tmp_path / "arc-agi_x_solutions.json").write_text(json.dumps({"aaa": [[[1]], [[1, 2], [3]]]}))
    with pytest.raises(DataError, match=r"challenges.json, task aaa: test\[1\].output is ragged"):
        load_kaggle_subset(tmp_path, "x")
    (tmp_path / "arc-agi_x_solutions.json").unlink()
    with pytest.raises(DataError, match=r"solutions.json: file not found"):
        load_kaggle_subset(tmp_path, "x")


def test_failed_builds_leave_no_output(tmp_path: Path) -> None:
    bad_maze = write_csv(tmp_path / "maze.csv", [(MAZE_Q, MAZE_A), (MAZE_Q, "S  ### ##   G# #")])
    out_root = tmp_path / "out"
    with pytest.raises(DataError, match=r"maze.csv, row 2"):
        build_dataset("maze-hard-1k", {"train_csv": str(bad_maze), "test_csv": str(bad_maze)}, out_root=out_root)
    kaggle = tmp_path / "kaggle"
    kaggle.mkdir()
    for subset in ("training", "evaluation", "concept"):
        bad = _task(test=[{"input": [[1, 2], [3]]}]) if subset == "concept" else _task()
        (kaggle / f"arc-agi_{subset}_challenges.json").write_text(json.dumps({f"{subset}1": bad}))
        (kaggle / f"arc-agi_{subset}_solutions.json").write_text(json.dumps({f"{subset}1": [[[1]]]}))
    with pytest.raises(DataError, match=r"task concept1: test\[0\].input is ragged"):
        build_dataset("arc-agi-1", {"kaggle_dir": str(kaggle), "num_aug": 2}, out_root=out_root)
    assert not out_root.exists() or list(out_root.iterdir()) == []
