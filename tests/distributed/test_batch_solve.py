"""`solve_files` (the Ray Data path of `trm solve --ray`) on a real local Ray with a real (untrained, tiny) 9x9 Sudoku
model: the answers are the local path's, row by row (1 and 2 workers, a seeded stochastic strategy, several read
blocks per file), S3 in and out against a moto server on loopback, and bad input fails naming the file and row and
leaves nothing behind. Encoding is checked against the local readers without Ray (Sudoku and Maze)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from trm.config import load_config
from trm.distributed.batch_solve import SUCCESS_FILE, encode, numbered_blocks, solve_files
from trm.errors import UsageError
from trm.model import TRM
from trm.s3 import S3Settings, pyarrow_filesystem
from trm.solver.answers import compact
from trm.solver.inputs import ModelKind, PuzzleInputError
from trm.solver.puzzles import read_puzzles
from trm.solver.runner import solve
from trm.store import ModelStore, PublishRequest
from trm.train.export import export_model

ROWS = 120  # puzzles per test file: Ray start-up, not the model, dominates these tests
SMALL_BLOCKS = 4096  # read-block bytes: ~25 Sudoku rows, so a file spans several blocks and read tasks


def tiny_sudoku_model(folder: Path) -> Path:
    torch.manual_seed(0)
    sizes = ["model.seq_len=81", "model.vocab_size=11", "model.num_puzzle_identifiers=1"]
    config = load_config(
        "smoke", ["data.name=sudoku-extreme-1k", "model.hidden_size=16", "model.puzzle_emb_ndim=16", *sizes]
    )
    return export_model(TRM(config.model), config, folder)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_sudoku_model(tmp_path_factory.mktemp("batch-solve") / "export")


def sudoku_rows(shared_datasets: Path, count: int = ROWS) -> list[dict[str, str]]:
    with open(shared_datasets / "sudoku-extreme-1k" / "train1k.csv", newline="") as handle:
        return list(csv.DictReader(handle))[:count]


def write_csv(
    path: Path, rows: list[dict[str, str]], fields: tuple[str, ...] = ("source", "question", "answer", "rating")
) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(fields), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def ray_rows(table: pa.Table) -> list[tuple]:
    """(source_file, row, answer, steps, confidence, forward_passes, correct), sorted by file and row."""
    table = table.sort_by([("source_file", "ascending"), ("row", "ascending")])
    columns = ["source_file", "row", "answer", "steps", "confidence", "forward_passes", "correct"]
    return list(zip(*(table.column(c).to_pylist() for c in columns), strict=True))


def local_rows(model: Path, file: Path, strategy: str) -> list[tuple]:
    answers = solve(str(model), file, strategy, batch_size=64)
    return [
        (str(file.resolve()), i, compact(a.answer, "sudoku"), a.steps, a.confidence, a.forward_passes, a.correct)
        for i, a in enumerate(answers, start=1)
    ]


@pytest.mark.parametrize(
    ("workers", "strategy"),
    [(1, "fixed:steps=2"), (2, "trajectories:trajectories=3,steps=2,seed=7")],
)
def test_answers_are_the_local_paths_row_by_row(
    local_ray, model: Path, shared_datasets: Path, tmp_path: Path, workers: int, strategy: str
) -> None:
    rows = sudoku_rows(shared_datasets)
    first = write_csv(tmp_path / "first.csv", rows[:70])
    second = write_csv(tmp_path / "second.csv", rows[70:])
    unlabelled = write_csv(tmp_path / "unlabelled.csv", [{**r, "answer": ""} for r in rows[:30]])
    out = tmp_path / "answers"
    summary = solve_files(
        str(model), [str(first), str(second), str(unlabelled)], str(out), strategy,
        workers=workers, batch_size=16, read_block_bytes=SMALL_BLOCKS,
    )  # fmt: skip
    got = ray_rows(pq.read_table(out))
    want = local_rows(model, first, strategy) + local_rows(model, second, strategy)
    assert got[: len(want)] == want
    # no answer given: the same answers, correct unknown
    assert got[len(want) :] == [(str(unlabelled.resolve()), *w[1:6], None) for w in want[:30]]
    assert (summary.puzzles, summary.judged, summary.workers) == (len(rows) + 30, len(rows), workers)
    assert summary.right == sum(bool(w[-1]) for w in want) and summary.puzzles_per_s > 0
    manifest = json.loads((out / SUCCESS_FILE).read_text())
    assert manifest["puzzles"] == len(rows) + 30 and sum(p["rows"] for p in manifest["parts"]) == len(rows) + 30
    assert sorted(p.name for p in out.iterdir()) == sorted([SUCCESS_FILE, *summary.part_files])
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []
    table = pq.read_table(out)  # part files in name order hold the rows in input order
    order = list(zip(table.column("source_file").to_pylist(), table.column("row").to_pylist(), strict=True))
    assert order == [(g[0], g[1]) for g in got]
    assert table.column("question").to_pylist()[:2] == [rows[0]["question"], rows[1]["question"]]


def test_s3_in_and_out_with_the_model_in_an_s3_store(
    local_ray, model: Path, shared_datasets: Path, s3_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the workers of the running local Ray never see these variables: the settings must travel with the job
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    bucket = s3_server.new_bucket()
    ModelStore.open(f"s3://{bucket}/store").publish(PublishRequest(name="sudoku", model_dir=model, aliases=["prod"]))
    fs = s3_server.filesystem()
    rows = sudoku_rows(shared_datasets, 40)
    fs.put(str(write_csv(tmp_path / "in.csv", rows)), f"{bucket}/inputs/in.csv")
    summary = solve_files(
        f"s3://{bucket}/store#sudoku@prod", [f"s3://{bucket}/inputs/in.csv"], f"s3://{bucket}/answers",
        "fixed:steps=1", workers=1, batch_size=16,
    )  # fmt: skip
    assert summary.model == f"s3://{bucket}/store#sudoku:1" and summary.puzzles == 40
    arrow_fs = pyarrow_filesystem(S3Settings(endpoint_url=s3_server.endpoint_url))
    table = pq.read_table(f"{bucket}/answers", filesystem=arrow_fs)
    want = local_rows(model, tmp_path / "in.csv", "fixed:steps=1")
    assert ray_rows(table) == [(f"s3://{bucket}/inputs/in.csv", *w[1:]) for w in want]
    manifest = json.loads(fs.cat(f"{bucket}/answers/{SUCCESS_FILE}"))
    assert manifest["inputs"] == [f"s3://{bucket}/inputs/in.csv"] and manifest["puzzles"] == 40
    with pytest.raises(UsageError, match="already holds files"):
        solve_files(str(model), [f"s3://{bucket}/inputs/in.csv"], f"s3://{bucket}/answers", "fixed", workers=1)
    # a bad row found by an actor: the parts written before it are removed, and no _SUCCESS appears
    rows[35] = {**rows[35], "answer": rows[35]["answer"][:80]}
    fs.put(str(write_csv(tmp_path / "bad.csv", rows)), f"{bucket}/inputs/bad.csv")
    with pytest.raises(PuzzleInputError, match=rf"s3://{bucket}/inputs/bad.csv, row 36: answer has 80 characters"):
        solve_files(
            str(model), [f"s3://{bucket}/inputs/bad.csv"], f"s3://{bucket}/bad-answers", "fixed:steps=1",
            workers=1, batch_size=4, read_block_bytes=SMALL_BLOCKS,
        )  # fmt: skip
    assert fs.find(f"{bucket}/bad-answers") == []


def test_a_bad_row_past_the_first_block_names_file_and_row_and_leaves_nothing(
    local_ray, model: Path, shared_datasets: Path, tmp_path: Path
) -> None:
    rows = sudoku_rows(shared_datasets, 60)
    rows[49] = {**rows[49], "question": rows[49]["question"][:40] + "x" + rows[49]["question"][41:]}
    bad = write_csv(tmp_path / "bad.csv", rows)
    out = tmp_path / "answers"
    with pytest.raises(PuzzleInputError) as info:
        solve_files(
            str(model), [str(bad)], str(out), "fixed:steps=1", workers=2, batch_size=8, read_block_bytes=SMALL_BLOCKS
        )
    assert str(info.value) == f"{bad.resolve()}, row 50: question has character 'x' at cell 40 (allowed: .0 1-9)"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"]  # no output, no temporary folder


def test_input_that_does_not_fit_fails_before_ray_starts(model: Path, shared_datasets: Path, tmp_path: Path) -> None:
    rows = sudoku_rows(shared_datasets, 3)
    small = write_csv(tmp_path / "small.csv", [{"question": "1..." * 4, "answer": ""}], ("question", "answer"))
    with pytest.raises(PuzzleInputError, match=r"small.csv, row 1: question has 16 characters, expected 81; the model"):
        solve_files(str(model), [str(small)], str(tmp_path / "out"), "fixed")
    wrong = write_csv(tmp_path / "wrong.csv", [{**rows[0], "answer": rows[1]["answer"]}])
    with pytest.raises(PuzzleInputError, match=r"wrong.csv, row 1: answer contradicts the clue"):
        solve_files(str(model), [str(wrong)], str(tmp_path / "out"), "fixed")
    no_question = write_csv(tmp_path / "noq.csv", rows, ("source", "answer"))
    with pytest.raises(PuzzleInputError, match=r"noq\.csv: no question column"):
        solve_files(str(model), [str(no_question)], str(tmp_path / "out"), "fixed")
    ragged = tmp_path / "ragged.csv"
    ragged.write_text(write_csv(tmp_path / "x.csv", rows).read_text() + "a,b,c,d,e\n")
    with pytest.raises(PuzzleInputError, match=r"ragged\.csv: unreadable CSV: .*Expected 4 columns, got 5"):
        solve_files(str(model), [str(ragged)], str(tmp_path / "out"), "fixed")
    with pytest.raises(PuzzleInputError, match=r"missing\.csv: file not found"):
        solve_files(str(model), [str(tmp_path / "missing.csv")], str(tmp_path / "out"), "fixed")
    with pytest.raises(Exception, match="nope"):
        solve_files(f"{tmp_path / 'store'}#nope:1", [str(wrong)], str(tmp_path / "out"), "fixed")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x.parquet").write_text("")
    with pytest.raises(UsageError, match="already holds files"):
        solve_files(str(model), [str(write_csv(tmp_path / "ok.csv", rows))], str(tmp_path / "taken"), "fixed")
    assert not (tmp_path / "out").exists()


def test_encoding_is_the_local_readers(shared_datasets: Path, tmp_path: Path) -> None:
    """Sudoku and Maze blocks become the local reader's tokens and labels; errors name the file's own row."""
    sudoku = write_csv(tmp_path / "s.csv", sudoku_rows(shared_datasets, 50))
    with open(sudoku, "rb") as stream:
        blocks = list(numbered_blocks(pa.input_stream(stream), str(sudoku), block_bytes=2048))
    assert len(blocks) > 2 and [r for b in blocks for r in b.column("row").to_pylist()] == list(range(1, 51))
    local = read_puzzles(sudoku, "sudoku", (9, 9))
    encoded = [encode(b, ModelKind("sudoku", (9, 9))) for b in blocks]
    assert np.array_equal(np.concatenate([p.inputs for p in encoded]), local.inputs)
    assert np.array_equal(np.concatenate([p.labels for p in encoded]), local.labels)

    with open(shared_datasets / "maze-hard" / "test.csv", newline="") as handle:
        mazes = list(csv.DictReader(handle))[:3]
    maze_file = write_csv(tmp_path / "m.csv", [mazes[0], {**mazes[1], "answer": ""}, mazes[2]])
    with open(maze_file, "rb") as stream:
        (block,) = numbered_blocks(pa.input_stream(stream), str(maze_file))
    got = encode(block, ModelKind("maze", (30, 30)))
    full = read_puzzles(write_csv(tmp_path / "full.csv", mazes), "maze", (30, 30))
    assert np.array_equal(got.inputs, full.inputs) and got.has_label.tolist() == [True, False, True]
    assert np.array_equal(got.labels[[0, 2]], full.labels[[0, 2]])
    broken = write_csv(
        tmp_path / "broken.csv", [mazes[0], {**mazes[1], "question": mazes[1]["question"].replace("S", " ")}]
    )
    with open(broken, "rb") as stream:
        (block,) = numbered_blocks(pa.input_stream(stream), str(broken))
    with pytest.raises(PuzzleInputError, match=r"broken.csv, row 2: maze must have exactly one S, found 0"):
        encode(block, ModelKind("maze", (30, 30)))
