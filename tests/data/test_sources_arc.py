"""ARC readers and recipes: the spec's puzzle / pair counts and the official split rule, on the real files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from trm.data import arc
from trm.data.build import build_dataset

# spec section 3.4: puzzles / demo pairs / test pairs of the Kaggle combined files
KAGGLE_COUNTS = {
    "training": (400, 1302, 416),
    "evaluation": (400, 1363, 419),
    "concept": (160, 427, 480),
    "training2": (1000, 3232, 1076),
    "evaluation2": (120, 358, 172),
}


def _counts(tasks: list[arc.ArcTask]) -> tuple[int, int, int]:
    return len(tasks), sum(len(t.train) for t in tasks), sum(len(t.test) for t in tasks)


@pytest.mark.parametrize("subset", sorted(KAGGLE_COUNTS))
def test_kaggle_subset_counts(shared_datasets: Path, subset: str) -> None:
    assert _counts(arc.load_kaggle_subset(shared_datasets / arc.KAGGLE_DIR, subset)) == KAGGLE_COUNTS[subset]


def test_json_folders_match_kaggle_where_the_readme_says_they_do(shared_datasets: Path) -> None:
    for subset in ("training", "evaluation", "concept", "training2"):
        folder = arc.load_json_folder(shared_datasets / arc.JSON_FOLDERS[subset], subset)
        kaggle = {t.task_id: t for t in arc.load_kaggle_subset(shared_datasets / arc.KAGGLE_DIR, subset)}
        assert {t.task_id for t in folder} == set(kaggle)
        for task in folder:
            other = kaggle[task.task_id]
            for mine, theirs in zip(task.train + task.test, other.train + other.test, strict=True):
                assert all(np.array_equal(a, b) for a, b in zip(mine, theirs, strict=True))
    # upstream ARC-AGI-2 evaluation differs from the Kaggle copy (datasets README): 359 demo / 167 test pairs
    evaluation2 = arc.load_json_folder(shared_datasets / arc.JSON_FOLDERS["evaluation2"], "evaluation2")
    assert _counts(evaluation2) == (120, 359, 167)


JSON_COUNTS = {**KAGGLE_COUNTS, "evaluation2": (120, 359, 167)}  # upstream ARC-AGI-2 evaluation (datasets README)


@pytest.mark.parametrize(
    ("name", "source", "subsets", "test_set"),
    [
        ("arc-agi-1", "kaggle", ("training", "evaluation", "concept"), "evaluation"),
        ("arc-agi-2", "kaggle", ("training2", "evaluation2", "concept"), "evaluation2"),
        ("arc-agi-2", "json", ("training2", "evaluation2", "concept"), "evaluation2"),
    ],
)
def test_recipe_split_rule_and_counts(
    shared_datasets: Path, tmp_path: Path, name: str, source: str, subsets: tuple[str, ...], test_set: str
) -> None:
    out = build_dataset(name, {"num_aug": 0, "source": source}, out_root=tmp_path)
    meta = json.loads((out / "metadata.json").read_text())
    counts = {s: (KAGGLE_COUNTS if source == "kaggle" else JSON_COUNTS)[s] for s in subsets}
    n_tasks = sum(c[0] for c in counts.values())
    # official: demo pairs of every subset + test pairs of the non-test subsets are trained on; ours moves the test
    # pairs of 40 of those tasks (params.yaml val_tasks) to the validation split
    train_examples = sum(c[1] for c in counts.values()) + sum(c[2] for s, c in counts.items() if s != test_set)
    assert meta["splits"]["train"]["examples"] + meta["splits"]["val"]["examples"] == train_examples
    assert meta["splits"]["val"]["groups"] == meta["splits"]["val"]["puzzles"] == 40
    assert meta["splits"]["train"]["puzzles"] == meta["splits"]["train"]["groups"] == n_tasks
    assert meta["splits"]["test"]["examples"] == counts[test_set][2]
    assert meta["splits"]["test"]["puzzles"] == counts[test_set][0]
    assert meta["num_puzzle_identifiers"] == n_tasks + 1
    test = pq.read_table(out / "test.parquet", columns=["pair_kind", "source_id", "aug_offset"]).to_pydict()
    assert set(test["pair_kind"]) == {"test"}
    assert all(off == [0, 0] for off in test["aug_offset"])
    test_ids = {t.task_id for t in arc.load_kaggle_subset(shared_datasets / arc.KAGGLE_DIR, test_set)}
    assert [m["name"] for m in meta["sources"]][:2] == (
        [f"arc-agi_{subsets[0]}_challenges.json", f"arc-agi_{subsets[0]}_solutions.json"]
        if source == "kaggle"
        else ["training", "evaluation"]
    )
    assert set(test["source_id"]) == test_ids
    train = pq.read_table(out / "train.parquet", columns=["pair_kind", "source_id"]).to_pydict()
    test_kind_in_train = {s for s, k in zip(train["source_id"], train["pair_kind"], strict=True) if k == "test"}
    assert not (test_kind_in_train & test_ids)  # the held-out test outputs are never trained on
    held_out = json.loads((out / "test_puzzles.json").read_text())
    assert set(held_out) == test_ids
    assert all("output" in pair for task in held_out.values() for pair in task["test"])
    identifiers = json.loads((out / "identifiers.json").read_text())
    assert identifiers[0] == "<blank>" and len(identifiers) == n_tasks + 1
    val = pq.read_table(out / "val.parquet", columns=["pair_kind", "source_id", "puzzle_identifier"]).to_pydict()
    val_ids = set(val["source_id"])
    assert set(val["pair_kind"]) == {"test"} and not (val_ids & test_ids)
    assert set(json.loads((out / "val_puzzles.json").read_text())) == val_ids
    assert not (test_kind_in_train & val_ids)  # validation outputs are never trained on
    demos_in_train = {s for s, k in zip(train["source_id"], train["pair_kind"], strict=True) if k == "train"}
    assert val_ids <= demos_in_train  # their demonstrations stay, as at test time
