"""Sudoku CSV reader: the official blank conventions, sizes 4/6/9, rating filter and the seeded subsample used by
the `sudoku-extreme-full` builder (on a stand-in "full" CSV made from the real 1k puzzles)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from trm.data.build import build_dataset
from trm.data.sudoku import read_sudoku_csv, subsample, sudoku_tokens
from trm.data.sudoku_gen import generate_sudoku_split


def _fake_full_csv(shared_datasets: Path, path: Path, start: int, count: int) -> Path:
    """Real puzzles with ratings 0..9 (row k gets rating k % 10), '0' for some blanks like other HRM dumps."""
    with open(shared_datasets / "sudoku-extreme-1k" / "train1k.csv", newline="") as src:
        rows = list(csv.DictReader(src))[start : start + count]
    with open(path, "w", newline="") as dst:
        writer = csv.writer(dst)
        writer.writerow(["source", "question", "answer", "rating"])
        for k, row in enumerate(rows):
            question = row["question"].replace(".", "0") if k % 2 else row["question"]
            writer.writerow([f"src{k}", question, row["answer"], k % 10])
    return path


def test_dot_and_zero_are_blanks_and_tokens_shift_by_one(shared_datasets: Path, tmp_path: Path) -> None:
    path = _fake_full_csv(shared_datasets, tmp_path / "t.csv", 0, 20)
    rows = read_sudoku_csv(path)
    reference = read_sudoku_csv(shared_datasets / "sudoku-extreme-1k" / "train1k.csv")
    np.testing.assert_array_equal(rows.questions, reference.questions[:20])
    np.testing.assert_array_equal(rows.ratings, np.arange(20) % 10)
    assert sudoku_tokens(np.array([0, 1, 9])).tolist() == [1, 2, 10]


def test_small_sizes_read_back(tmp_path: Path) -> None:
    for size in (4, 6):
        train, _ = generate_sudoku_split(size, 5, 0, seed=2)
        path = tmp_path / f"s{size}.csv"
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["source", "question", "answer", "rating"])
            for q, a in zip(train.questions, train.answers, strict=True):
                writer.writerow(["", "".join(str(d) if d else "." for d in q), "".join(map(str, a)), ""])
        rows = read_sudoku_csv(path, size=size)
        np.testing.assert_array_equal(rows.questions, train.questions)
        np.testing.assert_array_equal(rows.answers, train.answers)


def test_rating_filter_and_seeded_subsample(shared_datasets: Path, tmp_path: Path) -> None:
    path = _fake_full_csv(shared_datasets, tmp_path / "t.csv", 0, 200)
    hard = read_sudoku_csv(path, min_difficulty=7)
    assert len(hard) == 60 and hard.ratings.min() == 7
    assert hard.rows.tolist() == [r for r in range(1, 201) if (r - 1) % 10 >= 7]
    a, b, c = subsample(hard, 10, seed=0), subsample(hard, 10, seed=0), subsample(hard, 10, seed=1)
    assert np.array_equal(a.rows, b.rows) and not np.array_equal(a.rows, c.rows)
    assert len(set(a.rows.tolist())) == 10 and np.all(np.diff(a.rows) > 0)
    assert subsample(hard, None, 0) is hard and subsample(hard, 1000, 0) is hard


def test_full_builder_subsamples_train_only(shared_datasets: Path, tmp_path: Path) -> None:
    train = _fake_full_csv(shared_datasets, tmp_path / "train.csv", 0, 300)
    test = _fake_full_csv(shared_datasets, tmp_path / "test.csv", 300, 40)
    out = build_dataset(
        "sudoku-extreme-full",
        {
            "train_csv": str(train),
            "test_csv": str(test),
            "subsample_size": 25,
            "min_difficulty": 5,
            "val_count": 5,
            "num_aug": 2,
            "seed": 3,
        },
        out_root=tmp_path,
    )
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["splits"]["train"]["groups"] == 20 and meta["splits"]["train"]["examples"] == 60
    assert meta["splits"]["val"]["groups"] == 5 and meta["splits"]["val"]["examples"] == 5  # carved from the 25
    assert meta["splits"]["test"]["examples"] == 20  # the rating filter applies, the subsample does not
    sources = pq.read_table(out / "train.parquet", columns=["source_id"]).column("source_id").to_pylist()
    sources += pq.read_table(out / "val.parquet", columns=["source_id"]).column("source_id").to_pylist()
    rows = sorted({int(s.split(":")[1]) for s in sources})
    assert len(rows) == 25 and all((r - 1) % 10 >= 5 for r in rows) and sources[0].startswith("train.csv:")
    assert [s.name for s in map(Path, (m["name"] for m in meta["sources"]))] == ["train.csv", "test.csv"]
