"""Model output -> answers for `trm solve`: the given solutions fed back as predictions come out right and in the
puzzle's own notation (ARC: voted over the variants back to the original output), the terminal text, and the
answer files (JSON / CSV by suffix, written whole or not at all)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from trm.data.augment import dihedral
from trm.errors import UsageError
from trm.evaluate.arc import sigmoid
from trm.solver.answers import Answer, answers_from, output_format, rank_votes, render_answer, write_answers
from trm.solver.inputs import Puzzles
from trm.solver.puzzles import read_puzzles

ARC_TASK = "12997ef3"  # two test inputs


def run(puzzles: Puzzles, predictions: np.ndarray, q: float = 2.0) -> list[Answer]:
    n = len(puzzles)
    return answers_from(puzzles, predictions, np.full(n, q), np.full(n, 16), np.full(n, 16))


@pytest.fixture(scope="module")
def sudoku_rows(shared_datasets: Path) -> list[dict[str, str]]:
    with open(shared_datasets / "sudoku-extreme-1k" / "train1k.csv", newline="") as handle:
        return list(csv.DictReader(handle))[:3]


@pytest.fixture(scope="module")
def sudoku(tmp_path_factory: pytest.TempPathFactory, sudoku_rows: list[dict[str, str]]) -> Puzzles:
    path = tmp_path_factory.mktemp("sudoku") / "three.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(sudoku_rows[0]))
        writer.writeheader()
        writer.writerows(sudoku_rows)
    return read_puzzles(path, "sudoku", (9, 9))


@pytest.fixture(scope="module")
def arc(shared_datasets: Path) -> Puzzles:
    return read_puzzles(shared_datasets / "arc-agi-1" / "data" / "evaluation" / f"{ARC_TASK}.json", "arc", (30, 30))


def test_sudoku_labels_round_trip(sudoku: Puzzles, sudoku_rows: list[dict[str, str]]) -> None:
    assert sudoku.labels is not None
    answers = run(sudoku, sudoku.labels)
    assert [a.correct for a in answers] == [True] * 3
    assert ["".join(str(d) for row in a.answer for d in row) for a in answers] == [r["answer"] for r in sudoku_rows]
    assert answers[0].name == "three.csv:row 1" and answers[0].confidence == pytest.approx(sigmoid(2.0))
    assert (answers[0].steps, answers[0].forward_passes, answers[0].attempts) == (16, 16, None)
    wrong = sudoku.labels.copy()
    wrong[0, [0, 1]] = wrong[0, [1, 0]]  # swap two cells: a row still holds every digit, a column does not
    wrong[1, :] = 1  # no digit anywhere
    answers = run(sudoku, wrong)
    assert [a.correct for a in answers] == [False, False, True]
    assert answers[1].answer[0] == [0] * 9
    unknown = run(read_puzzles(sudoku_rows[0]["question"], "sudoku", (9, 9)), sudoku.labels[:1])
    assert unknown[0].correct is None and unknown[0].name == "puzzle 1"


def test_maze_labels_round_trip_and_other_shortest_paths(tmp_path: Path, shared_datasets: Path) -> None:
    with open(shared_datasets / "maze-hard" / "test.csv", newline="") as handle:
        row = next(csv.DictReader(handle))
    mazes = read_puzzles("\n".join(row["answer"][r * 30 : (r + 1) * 30] for r in range(30)), "maze", (30, 30))
    assert mazes.labels is not None
    (answer,) = run(mazes, mazes.labels)
    assert answer.correct and "".join(answer.answer) == row["answer"] and len(answer.answer) == 30
    (wrong,) = run(mazes, mazes.inputs)
    assert wrong.correct is False
    open_room = read_puzzles("Soo\n  o\n  G\n\nSoo\n  o\n  G", "maze", (3, 3))
    other_path = read_puzzles("S  \no  \nooG", "maze", (3, 3)).labels
    detour = np.array([[3, 5, 5, 5, 5, 2, 2, 2, 4]])  # "Soo" "oo " "  G": not a path
    answers = answers_from(open_room, np.concatenate([other_path, detour]), [0.0, 0.0], [1, 2], [3, 4])
    assert [a.correct for a in answers] == [True, False]
    assert answers[0].answer == ["S  ", "o  ", "ooG"] and answers[0].confidence == 0.5


def test_arc_vote_returns_the_original_output(arc: Puzzles, shared_datasets: Path) -> None:
    task = json.loads((shared_datasets / "arc-agi-1" / "data" / "evaluation" / f"{ARC_TASK}.json").read_text())
    assert arc.labels is not None and arc.arc is not None
    answers = run(arc, arc.labels)  # every variant predicts its own transformed output
    assert [a.name for a in answers] == [f"{ARC_TASK}/test 0", f"{ARC_TASK}/test 1"]
    for answer, pair in zip(answers, task["test"], strict=True):
        assert answer.answer == pair["output"] and answer.correct and answer.correct_top2
        assert (answer.votes, answer.variants, answer.forward_passes, answer.attempts) == (8, 8, 128, [pair["output"]])


def canvas(grid: np.ndarray, d: int, colour_map: np.ndarray) -> np.ndarray:
    """A predicted 30x30 canvas holding ``grid`` as variant (d, colour_map) would draw it."""
    shown = dihedral(colour_map[grid], d)
    out = np.zeros((30, 30), np.int64)
    h, w = shown.shape
    out[:h, :w] = shown + 2
    out[h, :w] = 1 if h < 30 else 0
    return out.reshape(-1)


def test_arc_majority_then_confidence(arc: Puzzles) -> None:
    assert arc.labels is not None and arc.arc is not None
    output = arc.arc.outputs[0]
    assert output is not None
    other = (output + 1) % 10
    predictions = arc.labels.astype(np.int64).copy()
    for r in range(3):  # 3 of the 8 variants of test 0 predict another grid, with more confidence
        predictions[r] = canvas(other, int(arc.arc.dihedral[r]), arc.arc.colour_map[r])
    q = np.where(np.arange(len(arc)) < 3, 5.0, -1.0)
    steps, passes = np.arange(len(arc)), np.ones(len(arc), np.int64)
    first = answers_from(arc, predictions, q, steps, passes)[0]
    assert first.correct and first.votes == 5 and first.attempts == [output.tolist(), other.tolist()]
    assert first.confidence == pytest.approx(sigmoid(-1.0)) and (first.steps, first.forward_passes) == (7, 8)
    predictions[3] = canvas(other, int(arc.arc.dihedral[3]), arc.arc.colour_map[3])  # 4 against 4: confidence wins
    tied = answers_from(arc, predictions, q, steps, passes)[0]
    assert tied.correct is False and tied.correct_top2 is True and tied.answer == other.tolist()
    assert "wrong (attempt 2 right)" in render_answer(tied)
    predictions[:8] = 0  # nothing but padding: no attempt at all
    empty = answers_from(arc, predictions, q, steps, passes)[0]
    assert (empty.answer, empty.attempts, empty.correct, empty.correct_top2) == ([], [], False, False)


def test_rank_votes() -> None:
    a, b = np.zeros((1, 2), np.uint8), np.ones((1, 2), np.uint8)
    ranked = rank_votes([a, b, b, a.reshape(2, 1)], [0.9, 0.2, 0.3, 0.1])
    assert [(v.votes, v.rows) for v in ranked] == [(2, [1, 2]), (1, [0]), (1, [3])]
    ranked = rank_votes([a, b], [0.5, 0.5])
    assert [v.rows for v in ranked] == [[0], [1]]


def test_render(sudoku: Puzzles, arc: Puzzles) -> None:
    assert sudoku.labels is not None and arc.labels is not None
    text = render_answer(run(sudoku, sudoku.labels)[0])
    lines = text.splitlines()
    assert lines[0] == "three.csv:row 1: right, steps 16, confidence 0.881, forward passes 16"
    assert lines[4] == "------+-------+------" and lines[1].count("|") == 2 and len(lines) == 12
    assert "wrong" in render_answer(run(sudoku, sudoku.inputs)[0]).splitlines()[0]
    small = read_puzzles("1.3.3.1..1.34..1", "sudoku", (4, 4))
    assert render_answer(run(small, small.inputs)[0]).splitlines()[1:] == [
        "1 . | 3 .",
        "3 . | 1 .",
        "----+----",
        ". 1 | . 3",
        "4 . | . 1",
    ]
    arc_text = render_answer(run(arc, arc.labels)[1]).splitlines()
    assert arc_text[0].endswith("votes 8/8") and arc_text[0].startswith(f"{ARC_TASK}/test 1: right")
    assert all(set(line) <= set("0123456789") for line in arc_text[1:])
    maze = read_puzzles("Soo\n  o\n  G", "maze", (3, 3))
    assert render_answer(run(maze, maze.inputs)[0]).splitlines()[1:] == ["S  ", "   ", "  G"]


def test_write_json_and_csv(tmp_path: Path, sudoku: Puzzles, arc: Puzzles) -> None:
    assert sudoku.labels is not None and arc.labels is not None
    answers = run(sudoku, sudoku.labels)
    records = json.loads(write_answers(answers, tmp_path / "out" / "answers.json").read_text())
    assert [r["name"] for r in records] == [a.name for a in answers] and records[0]["correct"] is True
    assert records[0]["answer"] == answers[0].answer and set(records[0]) == {
        "name",
        "task",
        "answer",
        "steps",
        "confidence",
        "forward_passes",
        "correct",
    }
    with open(write_answers(answers, tmp_path / "answers.CSV"), newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["answer"] == "".join(str(d) for row in answers[0].answer for d in row)
    assert (rows[0]["correct"], rows[0]["steps"], rows[0]["confidence"]) == ("true", "16", "0.880797")
    arc_answers = run(arc, arc.labels)
    with open(write_answers(arc_answers, tmp_path / "arc.csv"), newline="") as handle:
        arc_rows = list(csv.DictReader(handle))
    assert arc_rows[0]["answer"] == "|".join("".join(map(str, r)) for r in arc_answers[0].answer)
    assert (arc_rows[0]["attempt_2"], arc_rows[0]["correct_top2"]) == ("", "true")
    arc_records = json.loads(write_answers(arc_answers, tmp_path / "arc.json").read_text())
    assert arc_records[1]["attempts"] == [arc_answers[1].answer] and arc_records[1]["variants"] == 8
    unknown = run(read_puzzles("1.3.3.1..1.34..1", "sudoku", (4, 4)), np.zeros((1, 16)))
    with open(write_answers(unknown, tmp_path / "u.csv"), newline="") as handle:
        assert next(csv.DictReader(handle))["correct"] == ""
    assert json.loads(write_answers(unknown, tmp_path / "u.json").read_text())[0]["correct"] is None


def test_bad_output_files_leave_nothing(tmp_path: Path, sudoku: Puzzles) -> None:
    assert output_format("a.json") == "json" and output_format(Path("b.Csv")) == "csv"
    answers = run(sudoku, sudoku.inputs)
    for name in ("answers.txt", "answers"):
        with pytest.raises(UsageError, match=rf"--out .*{name}: unknown output format .*name a .json or .csv file"):
            write_answers(answers, tmp_path / name)
    assert list(tmp_path.iterdir()) == []
    target = tmp_path / "answers.json"
    target.write_text("old\n")
    broken = [*answers, Answer("x", "sudoku", [[object()]], 1, 0.5, 1, None)]
    with pytest.raises(TypeError):
        write_answers(broken, target)
    assert target.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["answers.json"]


def test_answers_refuse_mismatched_outputs(sudoku: Puzzles) -> None:
    with pytest.raises(ValueError, match=r"3 puzzles of 81 tokens, but predictions \(2, 81\)"):
        answers_from(sudoku, sudoku.inputs[:2], [0, 0], [1, 1], [1, 1])
