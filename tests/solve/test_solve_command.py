"""`trm solve MODEL INPUT` end to end: models published to a real store and named by a store reference answer the
offline datasets' own files (Sudoku-Extreme CSV, Maze-Hard CSV, an ARC-AGI-1 task) with every strategy family, and
bad input fails with one clear line and writes nothing. (That a trained model's answers are right is tested with the
learned smoke model in tests/train/test_learning.py.)"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from trm.cli import app
from trm.config import load_config
from trm.model import TRM
from trm.store import ModelStore, PublishRequest
from trm.train.export import export_model

ARC_TASK = "12997ef3"  # an ARC-AGI-1 evaluation task with two test inputs
# (dataset name, seq_len, vocab, puzzle identifiers): untrained tiny models with the paper workloads' shapes
KINDS = {
    "sudoku": ("sudoku-extreme-1k", 81, 11, 1),
    "maze": ("maze-hard", 900, 6, 1),
    "arc": ("arc-agi-1", 900, 12, 1),
}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local store holding one small untrained model per puzzle kind (names: sudoku, maze, arc)."""
    root = tmp_path_factory.mktemp("solve")
    store = ModelStore.open(str(root / "store"))
    for name, (dataset, seq_len, vocab, ids) in KINDS.items():
        sizes = [f"model.seq_len={seq_len}", f"model.vocab_size={vocab}", f"model.num_puzzle_identifiers={ids}"]
        config = load_config(
            "smoke", [f"data.name={dataset}", "model.hidden_size=16", "model.puzzle_emb_ndim=16", *sizes]
        )
        export = export_model(TRM(config.model), config, root / name)
        store.publish(PublishRequest(name=name, model_dir=export))
    return root / "store"


def head_of(csv_file: Path, rows: int, out: Path) -> Path:
    with open(csv_file, newline="") as source:
        lines = source.readlines()[: rows + 1]
    out.write_text("".join(lines))
    return out


def solve(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["solve", *args])
    return result.exit_code, result.output


@pytest.mark.parametrize(
    "strategy", ["fixed:steps=3", "adaptive:halt_threshold=0.5", "trajectories:trajectories=3", "vote:votes=2"]
)
def test_sudoku_from_the_real_csv(store: Path, shared_datasets: Path, tmp_path: Path, strategy: str) -> None:
    puzzles = head_of(shared_datasets / "sudoku-extreme-1k" / "train1k.csv", 6, tmp_path / "six.csv")
    out = tmp_path / "answers.csv"
    code, printed = solve(f"{store}#sudoku:1", str(puzzles), "--strategy", strategy, "--out", str(out), "--show", "1")
    assert code == 0, printed
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["name"] for row in rows] == [f"six.csv:row {i}" for i in range(1, 7)]
    assert all(row["correct"] in ("true", "false") for row in rows)  # the CSV gives solutions: each one judged
    assert all(len(row["answer"]) == 81 for row in rows)
    assert "6 puzzle(s) solved" in printed and "... 5 more not shown" in printed


def test_maze_and_arc_from_the_real_files(store: Path, shared_datasets: Path, tmp_path: Path) -> None:
    mazes = head_of(shared_datasets / "maze-hard" / "test.csv", 2, tmp_path / "two.csv")
    code, printed = solve(
        f"{store}#maze@latest", str(mazes), "--strategy", "fixed:steps=1", "--out", str(tmp_path / "m.json")
    )
    assert code == 0, printed
    answers = json.loads((tmp_path / "m.json").read_text())
    assert len(answers) == 2 and all(len(a["answer"]) == 30 and len(a["answer"][0]) == 30 for a in answers)
    assert answers[0]["steps"] == 1 and answers[0]["forward_passes"] == 1

    task = shared_datasets / "arc-agi-1" / "data" / "evaluation" / f"{ARC_TASK}.json"
    out = tmp_path / "arc.json"
    code, printed = solve(
        f"{store}#arc:1", str(task), "--strategy", "fixed:steps=1", "--variants", "3", "--out", str(out)
    )
    assert code == 0, printed
    answers = json.loads(out.read_text())
    assert [a["name"] for a in answers] == [f"{ARC_TASK}/test 0", f"{ARC_TASK}/test 1"]
    assert all(a["variants"] == 3 and a["forward_passes"] == 3 and len(a["attempts"]) >= 1 for a in answers)


@pytest.mark.parametrize(
    ("content", "strategy", "message"),
    [
        ("source,question,answer,rating\n,12345,,0\n", "fixed", "row 1"),
        ("source,question,answer,rating\n," + "." * 81 + "," + "1" * 81 + ",0\n", "bogus", "unknown strategy"),
        ("source,question,answer,rating\n," + "." * 81 + ",,0\n", "adaptive:calibrate", "validation split"),
    ],
)
def test_bad_input_fails_with_one_line_and_writes_nothing(
    store: Path, tmp_path: Path, content: str, strategy: str, message: str
) -> None:
    puzzles = tmp_path / "bad.csv"
    puzzles.write_text(content)
    out = tmp_path / "answers.json"
    code, printed = solve(f"{store}#sudoku:1", str(puzzles), "--strategy", strategy, "--out", str(out))
    assert code == 2, printed
    errors = [line for line in printed.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], printed
    assert "Traceback" not in printed and not out.exists() and list(tmp_path.iterdir()) == [puzzles]


def test_an_unknown_model_and_an_unknown_output_format_fail_before_solving(store: Path, tmp_path: Path) -> None:
    code, printed = solve(f"{store}#nope:1", "." * 81)
    assert code != 0 and "nope" in printed
    code, printed = solve(f"{store}#sudoku:1", "." * 81, "--out", str(tmp_path / "answers.txt"))
    assert code == 2 and ".txt" in printed and not (tmp_path / "answers.txt").exists()


def test_the_python_api_answers_a_puzzle_written_out(store: Path) -> None:
    import trm

    answers = trm.solve(f"{store}#sudoku:1", "." * 81, "fixed:steps=2")
    assert len(answers) == 1 and answers[0].steps == 2 and answers[0].correct is None
    assert len(answers[0].answer) == 9
    with pytest.raises(ValueError, match="validation split"):  # nothing to calibrate on: refused, not ignored
        trm.solve(f"{store}#sudoku:1", "." * 81, "adaptive:calibrate")
