"""`trm solve` input -> model tokens: real puzzles from the offline datasets read to exactly the tokens the dataset
builders produce, the model kind from its vocabulary, and bad input refused with a clear error naming the file and
its row / line / task (a ``DataError`` that the command reports with exit code 2)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from trm.data.arc import load_kaggle_subset, parse_task
from trm.data.augment import arc_canvas_rows
from trm.data.build import build_dataset
from trm.data.errors import DataError
from trm.data.maze import read_maze_csv
from trm.data.sudoku import read_sudoku_csv, sudoku_tokens
from trm.errors import UsageError
from trm.solver.arc_tasks import read_arc_tasks, variant_of_name
from trm.solver.puzzles import PuzzleInputError, read_puzzles, task_of_model

ARC_TASK = "12997ef3"  # an ARC-AGI-1 evaluation task with two test inputs


@pytest.fixture(scope="module")
def sudoku_csv(shared_datasets: Path) -> Path:
    return shared_datasets / "sudoku-extreme-1k" / "train1k.csv"


@pytest.fixture(scope="module")
def sudoku_rows(sudoku_csv: Path) -> list[dict[str, str]]:
    with open(sudoku_csv, newline="") as handle:
        return list(csv.DictReader(handle))[:5]


@pytest.fixture(scope="module")
def maze_rows(shared_datasets: Path) -> list[dict[str, str]]:
    with open(shared_datasets / "maze-hard" / "test.csv", newline="") as handle:
        return list(csv.DictReader(handle))[:4]


def write_rows(path: Path, rows: list[dict[str, str]]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["source", "question", "answer", "rating"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def drawn(cells: str, size: int = 9, box: int = 3) -> str:
    """A 9x9 Sudoku drawn as a grid with box lines, as a person would type it."""
    lines = []
    for r in range(size):
        if r and r % box == 0:
            lines.append("------+-------+------")
        row = cells[r * size : (r + 1) * size]
        lines.append(" | ".join(" ".join(row[c : c + box]) for c in range(0, size, box)))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------- model kind
def test_task_of_model() -> None:
    assert task_of_model(900, 12) == ("arc", (30, 30))
    assert task_of_model(900, 6) == ("maze", (30, 30))
    assert task_of_model(81, 11) == ("sudoku", (9, 9))
    assert task_of_model(36, 8) == ("sudoku", (6, 6))
    assert task_of_model(16, 6, hint="sudoku-4x4") == ("sudoku", (4, 4))  # the smoke preset's dataset
    assert task_of_model(16, 6, hint="maze") == ("maze", (4, 4))
    assert task_of_model(120, 6, hint="maze-small", grid_shape=(10, 12)) == ("maze", (10, 12))
    with pytest.raises(UsageError, match=r"may be maze 4x4 or sudoku 4x4; name the task"):
        task_of_model(16, 6)
    with pytest.raises(UsageError, match="vocab_size 6 and seq_len 120 solves no known puzzle"):
        task_of_model(120, 6)
    with pytest.raises(UsageError, match="solves no known puzzle"):
        task_of_model(64, 10)  # 8x8 Sudoku: no box shape


# ---------------------------------------------------------------------------------------------------- sudoku
def test_sudoku_extreme_csv_reads_to_the_builders_tokens(shared_datasets: Path, sudoku_csv: Path) -> None:
    puzzles = read_puzzles(sudoku_csv, "sudoku", (9, 9))
    official = shared_datasets / "sudoku-extreme-1k" / "npy" / "train"  # the official builder's output
    assert np.array_equal(puzzles.inputs, np.load(official / "all__inputs.npy"))
    assert puzzles.labels is not None and np.array_equal(puzzles.labels, np.load(official / "all__labels.npy"))
    rows = read_sudoku_csv(sudoku_csv, size=9)
    assert np.array_equal(puzzles.inputs, sudoku_tokens(rows.questions))
    assert puzzles.names[:2] == ["train1k.csv:row 1", "train1k.csv:row 2"] and puzzles.has_label.all()
    assert (puzzles.task, puzzles.grid_shape, puzzles.num_groups) == ("sudoku", (9, 9), 1000)
    assert not puzzles.puzzle_identifiers.any() and puzzles.arc is None


def test_sudoku_literals_and_text_files(tmp_path: Path, sudoku_csv: Path, sudoku_rows: list[dict[str, str]]) -> None:
    expected = sudoku_tokens(read_sudoku_csv(sudoku_csv, size=9).questions[:3])
    question = sudoku_rows[0]["question"]
    for literal in (question, question.replace(".", "0"), drawn(question), "\n" + drawn(question) + "\n"):
        puzzles = read_puzzles(literal, "sudoku", (9, 9))
        assert np.array_equal(puzzles.inputs, expected[:1]) and puzzles.names == ["puzzle 1"]
        assert puzzles.labels is None and not puzzles.has_label.any()
    text = tmp_path / "puzzles.txt"
    text.write_text("# three puzzles\n" + "\n".join(r["question"] for r in sudoku_rows[:2]) + "\n\n")
    with open(text, "a") as handle:
        handle.write(drawn(sudoku_rows[2]["question"]) + "\n")
    puzzles = read_puzzles(str(text), "sudoku", (9, 9))
    assert np.array_equal(puzzles.inputs, expected)
    assert puzzles.names == ["puzzles.txt:line 2", "puzzles.txt:line 3", "puzzles.txt:line 5"]
    small = read_puzzles("1.3. 3.1. | .1.3 4..1", "sudoku", (4, 4))
    assert small.inputs.tolist() == [[2, 1, 4, 1, 4, 1, 2, 1, 1, 2, 1, 4, 5, 1, 1, 2]]


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("." * 80, "<input>: ", "puzzle has 80 cells, expected 81 for the model's 9x9 Sudoku"),
        ("." * 40 + "x" + "." * 40, "<input>: ", "puzzle has character 'x' at cell 40 (allowed: .0 1-9)"),
        ("." * 40 + "é" + "." * 40, "<input>: ", "puzzle has character 'é' at cell 40"),
        ("." * 81 + "\n" + "." * 81 + "1", "<input>, line 2: ", "puzzle has 82 cells, expected 81"),
        ("." * 9 + "\n" + "." * 10, "<input>, line 1: ", "puzzle has 19 cells, expected 81"),
        ("", "<input>: ", "no Sudoku puzzle found"),
    ],
)
def test_bad_sudoku_literals(text: str, where: str, message: str) -> None:
    with pytest.raises(PuzzleInputError) as info:
        read_puzzles(text, "sudoku", (9, 9))
    assert str(info.value).startswith(where) and message in str(info.value)
    assert isinstance(info.value, DataError) and isinstance(info.value, UsageError)  # `trm solve` exits 2


def test_bad_sudoku_files(tmp_path: Path, sudoku_rows: list[dict[str, str]]) -> None:
    good = sudoku_rows[0]["question"]
    text = tmp_path / "p.txt"
    text.write_text(f"{good}\n{good[:40]}7{good[41:]}\n{good}\n{good[:-1]}\n")
    with pytest.raises(PuzzleInputError, match=r"p.txt, line 4: puzzle has 80 cells, expected 81"):
        read_puzzles(text, "sudoku", (9, 9))
    text.write_text(f"{good}\n{good[:5]}x{good[6:]}\n")
    with pytest.raises(PuzzleInputError, match=r"p.txt, line 2: puzzle has character 'x' at cell 5"):
        read_puzzles(text, "sudoku", (9, 9))
    bad = dict(sudoku_rows[1], question=sudoku_rows[1]["question"][:-1])
    table = write_rows(tmp_path / "bad.csv", [sudoku_rows[0], bad])
    with pytest.raises(PuzzleInputError) as info:
        read_puzzles(table, "sudoku", (9, 9))
    assert (info.value.file, info.value.row) == (str(table), 2)
    assert "bad.csv, row 2: question has 80 characters, expected 81; the model solves 9x9 Sudoku" in str(info.value)
    with pytest.raises(PuzzleInputError, match=r"row 1: question has 81 characters, expected 16"):
        read_puzzles(write_rows(tmp_path / "big.csv", sudoku_rows[:1]), "sudoku", (4, 4))
    wrong = dict(sudoku_rows[0], answer="1" + sudoku_rows[0]["answer"][1:])
    with pytest.raises(PuzzleInputError, match=r"row 1: answer"):
        read_puzzles(write_rows(tmp_path / "wrong.csv", [wrong]), "sudoku", (9, 9))
    with pytest.raises(PuzzleInputError, match=r"nope.csv: file not found"):
        read_puzzles(str(tmp_path / "nope.csv"), "sudoku", (9, 9))
    with pytest.raises(PuzzleInputError, match=r"is a folder"):
        read_puzzles(tmp_path, "sudoku", (9, 9))
    binary = tmp_path / "b.txt"
    binary.write_bytes(b"\xff\xfe" + good.encode())
    with pytest.raises(PuzzleInputError, match=r"b.txt: not a UTF-8 text file"):
        read_puzzles(binary, "sudoku", (9, 9))


# ---------------------------------------------------------------------------------------------------- maze
def test_maze_hard_csv_reads_to_the_builders_tokens(
    tmp_path: Path, shared_datasets: Path, maze_rows: list[dict[str, str]]
) -> None:
    table = write_rows(tmp_path / "mazes.csv", maze_rows)
    puzzles = read_puzzles(table, "maze", (30, 30))
    official = shared_datasets / "maze-hard" / "npy" / "test"  # the official builder's output
    assert np.array_equal(puzzles.inputs, np.load(official / "all__inputs.npy", mmap_mode="r")[:4])
    assert puzzles.labels is not None
    assert np.array_equal(puzzles.labels, np.load(official / "all__labels.npy", mmap_mode="r")[:4])
    assert np.array_equal(puzzles.inputs, read_maze_csv(table).inputs)
    assert puzzles.names == [f"mazes.csv:row {i}" for i in range(1, 5)] and puzzles.has_label.all()


def test_maze_text_grids(tmp_path: Path, maze_rows: list[dict[str, str]]) -> None:
    official = read_maze_csv(write_rows(tmp_path / "m.csv", maze_rows[:2]))

    def grid(flat: str) -> str:
        return "\n".join(flat[r * 30 : (r + 1) * 30] for r in range(30))

    text = grid(maze_rows[0]["answer"]) + "\n\n" + grid(maze_rows[1]["question"]) + "\n"
    for source in (text, tmp_path / "mazes.txt"):
        (tmp_path / "mazes.txt").write_text(text)
        puzzles = read_puzzles(source, "maze", (30, 30))
        assert np.array_equal(puzzles.inputs, official.inputs)
        assert puzzles.has_label.tolist() == [True, False]
        assert puzzles.labels is not None and np.array_equal(puzzles.labels[0], official.labels[0])
    assert puzzles.names == ["mazes.txt:line 1", "mazes.txt:line 32"]
    flat = read_puzzles(maze_rows[2]["question"], "maze", (30, 30))  # the CSV's one-line layout
    assert flat.names == ["puzzle 1"] and flat.labels is None


def test_bad_mazes(tmp_path: Path, maze_rows: list[dict[str, str]]) -> None:
    rows = [maze_rows[0]["question"][r * 30 : (r + 1) * 30] for r in range(30)]
    with pytest.raises(PuzzleInputError, match=r"<input>, line 1: maze is 29x30, the model solves 30x30 mazes"):
        read_puzzles("\n".join(rows[:29]), "maze", (30, 30))
    (tmp_path / "m.txt").write_text("\n".join([*rows[:5], rows[5][:-1], *rows[6:]]))
    with pytest.raises(PuzzleInputError, match=r"m.txt, line 6: maze row has 29 characters, its first row 30"):
        read_puzzles(tmp_path / "m.txt", "maze", (30, 30))
    twice = "\n".join(rows) + "\n\n" + "\n".join([rows[0].replace(" ", "x", 1), *rows[1:]])
    (tmp_path / "m.txt").write_text(twice)
    with pytest.raises(PuzzleInputError, match=r"m.txt, line 32: maze has character 'x' at cell"):
        read_puzzles(tmp_path / "m.txt", "maze", (30, 30))
    no_goal = "\n".join(rows).replace("G", " ")
    with pytest.raises(PuzzleInputError, match=r"<input>, line 1: maze must have exactly one G, found 0"):
        read_puzzles(no_goal, "maze", (30, 30))
    small = write_rows(tmp_path / "small.csv", [{"question": "S  ### #    G# #", "answer": "Soo###o#ooo G# #"}])
    with pytest.raises(PuzzleInputError, match=r"small.csv, row 1: question has 16 characters, expected 900"):
        read_puzzles(small, "maze", (30, 30))
    with pytest.raises(PuzzleInputError, match=r"<input>, line 1: maze is 4x4, the model solves 30x30 mazes"):
        read_puzzles("S  #\n## #\n    \nG# #", "maze", (30, 30))


# ---------------------------------------------------------------------------------------------------- ARC
@pytest.fixture(scope="module")
def built_arc(tmp_path_factory: pytest.TempPathFactory, shared_datasets: Path) -> Path:
    """A real ARC build (the arc-agi-1 recipe, 3 augmentations) of three real tasks, ours the test-set one."""
    root = tmp_path_factory.mktemp("arc")
    combined, kaggle = shared_datasets / "trm-kaggle-combined", root / "kaggle"
    kaggle.mkdir()
    for subset, task_id in (("training", "007bbfb7"), ("evaluation", ARC_TASK), ("concept", "AboveBelow1")):
        for kind in ("challenges", "solutions"):
            everything = json.loads((combined / f"arc-agi_{subset}_{kind}.json").read_text())
            (kaggle / f"arc-agi_{subset}_{kind}.json").write_text(json.dumps({task_id: everything[task_id]}))
    return build_dataset("arc-agi-1", {"kaggle_dir": str(kaggle), "num_aug": 3, "val_tasks": 1}, out_root=root)


def test_arc_task_reads_to_the_builders_test_rows(built_arc: Path, shared_datasets: Path) -> None:
    task_file = shared_datasets / "arc-agi-1" / "data" / "evaluation" / f"{ARC_TASK}.json"
    identifiers = json.loads((built_arc / "identifiers.json").read_text())
    puzzles = read_arc_tasks(task_file, num_variants=4, identifiers=identifiers)
    table = pq.read_table(built_arc / "test.parquet").to_pylist()
    assert len(puzzles) == len(table) == 8 and puzzles.arc is not None
    built = {(row["pair_index"], identifiers[row["puzzle_identifier"]]): row for row in table}
    for r in range(len(puzzles)):
        row = built[(int(puzzles.arc.test_index[r]), puzzles.arc.variant_names[r])]
        assert np.array_equal(puzzles.inputs[r], row["inputs"]) and puzzles.labels is not None
        assert np.array_equal(puzzles.labels[r], row["labels"])
        assert puzzles.puzzle_identifiers[r] == row["puzzle_identifier"]
        assert (puzzles.arc.dihedral[r], puzzles.arc.colour_map[r].tolist()) == (
            row["aug_dihedral"],
            list(row["aug_value_map"]),
        )
    assert puzzles.names[:4] == [f"{ARC_TASK}/test 0"] * 4 and puzzles.group.tolist() == [0] * 4 + [1] * 4
    assert puzzles.arc.variant_names[0] == ARC_TASK and puzzles.has_label.all()
    outputs = [np.array(p["output"]) for p in json.loads(task_file.read_text())["test"]]
    assert all(np.array_equal(a, b) for a, b in zip(puzzles.arc.outputs, outputs, strict=True))


def test_arc_variants_without_identifiers(shared_datasets: Path) -> None:
    task_file = shared_datasets / "arc-agi-1" / "data" / "evaluation" / f"{ARC_TASK}.json"
    puzzles = read_arc_tasks(task_file)  # 8 variants, seed 0, blank identifiers
    assert puzzles.arc is not None and len(puzzles) == 16 and not puzzles.puzzle_identifiers.any()
    names = puzzles.arc.variant_names[:8]
    assert names[0] == ARC_TASK and len(set(names)) == 8 and names == puzzles.arc.variant_names[8:]
    assert read_arc_tasks(task_file).arc.variant_names == puzzles.arc.variant_names
    assert read_arc_tasks(task_file, seed=1).arc.variant_names != puzzles.arc.variant_names
    task = parse_task(json.loads(task_file.read_text()), task_file, ARC_TASK, "evaluation")
    variants = [variant_of_name(n)[1] for n in names]
    rendered = arc_canvas_rows(task.test[:1], variants, translate=False, rng=None)
    assert np.array_equal(puzzles.inputs[:8], rendered.inputs) and np.array_equal(puzzles.labels[:8], rendered.labels)
    one = read_arc_tasks(task_file, num_variants=1)
    assert len(one) == 2 and one.arc is not None and one.arc.variant_names == [ARC_TASK, ARC_TASK]


def test_kaggle_combined_file_with_a_task_id(tmp_path: Path, shared_datasets: Path) -> None:
    challenges = shared_datasets / "trm-kaggle-combined" / "arc-agi_evaluation_challenges.json"
    task_file = shared_datasets / "arc-agi-1" / "data" / "evaluation" / f"{ARC_TASK}.json"
    puzzles = read_puzzles(challenges, "arc", (30, 30), task_ids=[ARC_TASK], num_variants=3)
    alone = read_arc_tasks(task_file, num_variants=3)
    assert np.array_equal(puzzles.inputs, alone.inputs) and puzzles.has_label.all()
    assert puzzles.labels is not None and np.array_equal(puzzles.labels, alone.labels)  # outputs from the solutions
    kaggle = {t.task_id: t for t in load_kaggle_subset(challenges.parent, "evaluation")}
    assert puzzles.arc is not None and np.array_equal(puzzles.arc.outputs[1], kaggle[ARC_TASK].test[1][1])
    lone = tmp_path / "arc-agi_evaluation_challenges.json"  # no solutions file beside it
    shutil.copy(challenges, lone)
    unsolved = read_puzzles(str(lone), "arc", (30, 30), task_ids=[ARC_TASK, "00576224"], num_variants=2)
    assert unsolved.labels is None and not unsolved.has_label.any() and unsolved.arc is not None
    assert unsolved.arc.outputs == [None, None, None] and unsolved.names[-1] == "00576224/test 0"
    with pytest.raises(PuzzleInputError, match=r"challenges.json: no task 'nope' among its 400 tasks"):
        read_puzzles(lone, "arc", (30, 30), task_ids=["nope"])


def test_arc_folder_and_literal_json(tmp_path: Path, shared_datasets: Path) -> None:
    evaluation = shared_datasets / "arc-agi-1" / "data" / "evaluation"
    folder = tmp_path / "tasks"
    (folder / "more").mkdir(parents=True)
    shutil.copy(evaluation / f"{ARC_TASK}.json", folder)
    shutil.copy(evaluation / "00576224.json", folder / "more")
    puzzles = read_puzzles(folder, "arc", (30, 30), num_variants=2)
    assert puzzles.names[::2] == ["00576224/test 0", f"{ARC_TASK}/test 0", f"{ARC_TASK}/test 1"]
    task = json.loads((evaluation / "00576224.json").read_text())
    task["test"][0].pop("output")
    literal = read_puzzles(json.dumps(task), "arc", (30, 30), num_variants=2)
    assert np.array_equal(literal.inputs[0], puzzles.inputs[0]) and literal.labels is None  # the identity
    assert literal.names == ["input/test 0"] * 2
    shutil.copy(evaluation / "00576224.json", folder / f"{ARC_TASK}.json.bak")  # not a *.json: ignored
    (folder / "00576224.json").write_text("{}")
    with pytest.raises(PuzzleInputError, match=r"duplicate task id|not an ARC task"):
        read_puzzles(folder, "arc", (30, 30))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"train": [', "unreadable JSON"),
        (json.dumps({"train": [{"input": [[1]], "output": [[2]]}]}), "task bad: missing key 'test'"),
        (
            json.dumps({"train": [{"input": [[1]], "output": [[2]]}], "test": [{"output": [[1]]}]}),
            "missing key 'input'",
        ),
        (json.dumps({"train": [{"input": [[1]], "output": [[2]]}], "test": [{"input": [[1, 12]]}]}), "colour 12"),
        (json.dumps({"train": [{"input": [[1]], "output": [[2]]}], "test": [{"input": [[1], [1, 2]]}]}), "ragged"),
        (json.dumps([1, 2]), "not an ARC task"),
    ],
)
def test_bad_arc_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(PuzzleInputError) as info:
        read_puzzles(path, "arc", (30, 30))
    assert str(info.value).startswith(str(path)) and message in str(info.value)


def test_bad_arc_sources(tmp_path: Path) -> None:
    with pytest.raises(PuzzleInputError, match=r"<input>: not an ARC task: expected a task JSON file"):
        read_puzzles("hello", "arc", (30, 30))
    with pytest.raises(PuzzleInputError, match=r"<input>: unreadable JSON"):
        read_puzzles('{"train": ', "arc", (30, 30))
    with pytest.raises(PuzzleInputError, match=r"missing.json: file not found"):
        read_puzzles("missing.json", "arc", (30, 30))
    (tmp_path / "empty").mkdir()
    with pytest.raises(PuzzleInputError, match=r"empty: no \*.json task files"):
        read_puzzles(tmp_path / "empty", "arc", (30, 30))
    challenges = {"aaa": {"train": [{"input": [[1]], "output": [[2]]}], "test": [{"input": [[1]]}, {"input": [[2]]}]}}
    (tmp_path / "arc-agi_x_challenges.json").write_text(json.dumps(challenges))
    (tmp_path / "arc-agi_x_solutions.json").write_text(json.dumps({"aaa": [[[1]]]}))
    with pytest.raises(PuzzleInputError, match=r"solutions.json, task aaa: has 1 solutions for 2 test inputs"):
        read_puzzles(tmp_path / "arc-agi_x_challenges.json", "arc", (30, 30))
    with pytest.raises(UsageError, match="num_variants must be at least 1"):
        read_arc_tasks(tmp_path / "arc-agi_x_challenges.json", num_variants=0)
    with pytest.raises(UsageError, match="unknown task 'chess'"):
        read_puzzles("x", "chess", (8, 8))
