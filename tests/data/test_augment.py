"""Augmentation invariants: augmented Sudokus stay valid and consistent, augmented maze labels stay shortest paths,
and every ARC variant inverts back to its original exactly (using only what the Parquet row records)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from trm.data import arc
from trm.data.augment import (
    DIHEDRAL_INVERSE,
    arc_variants,
    augment_sudoku,
    dihedral,
    group_rng,
    invert_arc_prediction,
    invert_sudoku,
    maze_dihedral_variants,
)
from trm.data.build import build_dataset
from trm.data.maze import read_maze_csv
from trm.data.maze_solver import shortest_path_problem
from trm.data.sudoku import read_sudoku_csv
from trm.data.sudoku_gen import generate_sudoku_split
from trm.data.sudoku_solver import count_solutions, solution_problem


def _tokens(table, column: str) -> np.ndarray:
    flat = table.column(column).combine_chunks().flatten().to_numpy()
    return flat.reshape(table.num_rows, -1)


def test_dihedral_inverse_table() -> None:
    grid = np.arange(12).reshape(3, 4)
    images = {dihedral(grid, t).tobytes() + bytes(dihedral(grid, t).shape) for t in range(8)}
    assert len(images) == 8  # the 8 transforms are distinct
    for t in range(8):
        assert np.array_equal(dihedral(dihedral(grid, t), DIHEDRAL_INVERSE[t]), grid)


def test_augmented_sudoku_1k_rows_are_valid_consistent_and_invertible(shared_datasets: Path, tmp_path: Path) -> None:
    out = build_dataset("sudoku-extreme-1k", {"num_aug": 4, "test_count": 2, "test_min_rating": 0}, out_root=tmp_path)
    table = pq.read_table(out / "train.parquet")
    assert table.num_rows == (1000 - 100) * 5  # 100 source puzzles are the validation split
    q = _tokens(table, "inputs").astype(np.int64) - 1  # back to raw digits, 0 blank
    a = _tokens(table, "labels").astype(np.int64) - 1
    assert q.min() >= 0 and q.max() <= 9 and a.min() >= 1
    assert not ((q != 0) & (q != a)).any(), "an augmented puzzle contradicts its solution"
    for i in range(0, len(a), 37):
        assert solution_problem(a[i].astype(np.uint8), 9) is None
    for i in range(1, len(a), 499):  # symmetries keep the solution unique
        assert count_solutions(q[i].astype(np.uint8), 9) == 1
    original = read_sudoku_csv(shared_datasets / "sudoku-extreme-1k" / "train1k.csv")
    rec = table.select(["source_id", "aug_dihedral", "aug_value_map", "aug_row_perm", "aug_col_perm"]).to_pydict()
    position = {int(row): k for k, row in enumerate(original.rows)}
    for i in range(0, len(a), 11):
        g = position[int(rec["source_id"][i].split(":")[1])]  # the CSV row this group was augmented from
        args = (rec["aug_dihedral"][i], rec["aug_row_perm"][i], rec["aug_col_perm"][i], rec["aug_value_map"][i])
        assert np.array_equal(invert_sudoku(a[i], 9, *args), original.answers[g])
        assert np.array_equal(invert_sudoku(q[i], 9, *args), original.questions[g])
    # variants really differ from the original (a group is not 5 copies of one grid)
    assert len({a[i].tobytes() for i in range(5)}) == 5


@pytest.mark.parametrize("size", [4, 6])
def test_augmented_small_sudokus_respect_their_box_shapes(size: int) -> None:
    train, _ = generate_sudoku_split(size, 6, 0, seed=3)
    variants = augment_sudoku(train.questions, train.answers, size, 50, group_rng(7, size))
    if size == 6:
        assert not variants.dihedral.any()  # 2x3 boxes: transposing would break them
    else:
        assert variants.dihedral.any()
    for i in range(len(variants.answers)):
        assert solution_problem(variants.answers[i], size) is None
        q, ans = variants.questions[i], variants.answers[i]
        assert not ((q != 0) & (q != ans)).any()
        src = i // 50
        back = invert_sudoku(
            ans, size, variants.dihedral[i], variants.row_perm[i], variants.col_perm[i], variants.value_map[i]
        )
        assert np.array_equal(back, train.answers[src])


def test_sudoku_augmentation_is_seeded() -> None:
    train, _ = generate_sudoku_split(4, 3, 0, seed=1)
    first = augment_sudoku(train.questions, train.answers, 4, 20, group_rng(0, 1))
    again = augment_sudoku(train.questions, train.answers, 4, 20, group_rng(0, 1))
    other = augment_sudoku(train.questions, train.answers, 4, 20, group_rng(1, 1))
    assert np.array_equal(first.answers, again.answers)
    assert not np.array_equal(first.answers, other.answers)


def test_maze_dihedral_labels_are_still_shortest_paths(shared_datasets: Path) -> None:
    mazes = read_maze_csv(shared_datasets / "maze-hard" / "test.csv", check_paths=False)
    inputs, ids = maze_dihedral_variants(mazes.inputs[:12], 30, 30)
    labels, _ = maze_dihedral_variants(mazes.labels[:12], 30, 30)
    assert inputs.shape == (96, 900) and list(ids[:8]) == list(range(8))
    for x, y in zip(inputs, labels, strict=True):
        assert shortest_path_problem(x, y, 30, 30) is None
    assert len({x.tobytes() for x in inputs[:8]}) == 8


def test_maze_hard_with_aug_groups_eight_variants(tmp_path: Path) -> None:
    out = build_dataset("maze-hard-1k", {"aug": True, "val_count": 0}, out_root=tmp_path)
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["splits"]["train"] | {"sha256": ""} == {
        "examples": 8000,
        "puzzles": 8000,
        "groups": 1000,
        "mean_puzzle_examples": 1.0,
        "sha256": "",
    }
    assert meta["splits"]["test"]["examples"] == 1000  # the test split is never augmented
    table = pq.read_table(out / "train.parquet", columns=["inputs", "labels", "aug_dihedral"]).slice(8 * 500, 16)
    x, y = _tokens(table, "inputs"), _tokens(table, "labels")
    for i in range(16):
        assert shortest_path_problem(x[i], y[i], 30, 30) is None
        t = table.column("aug_dihedral")[i].as_py()
        assert np.array_equal(dihedral(x[i].reshape(30, 30), DIHEDRAL_INVERSE[t]), x[8 * (i // 8)].reshape(30, 30))


def test_every_arc_variant_inverts_back_exactly(shared_datasets: Path, tmp_path: Path) -> None:
    out = build_dataset("arc-agi-1", {"num_aug": 2}, out_root=tmp_path)
    tasks = {
        t.task_id: t
        for t in arc.load_recipe(
            ("training", "evaluation", "concept"), "evaluation", "kaggle", shared_datasets / arc.KAGGLE_DIR, {}
        )
    }
    identifiers = json.loads((out / "identifiers.json").read_text())
    puzzle_rows: dict[tuple[str, int], list[tuple[bytes, bytes]]] = defaultdict(list)
    seen_ids: dict[str, set[int]] = {}
    for split in ("train", "test"):
        table = pq.read_table(out / f"{split}.parquet")
        x, y = _tokens(table, "inputs"), _tokens(table, "labels")
        rec = table.drop(["inputs", "labels"]).to_pylist()
        seen_ids[split] = {r["puzzle_identifier"] for r in rec}
        at_origin: dict[int, bool] = defaultdict(bool)
        for i, r in enumerate(rec):
            task = tasks[r["source_id"]]
            pair = (task.train if r["pair_kind"] == "train" else task.test)[r["pair_index"]]
            assert np.array_equal(invert_arc_prediction(x[i], r), pair[0])
            assert np.array_equal(invert_arc_prediction(y[i], r), pair[1])
            name = identifiers[r["puzzle_identifier"]]
            assert name.split("|||")[0] == r["source_id"]
            if "|||" in name:
                assert name.split("|||")[1] == f"t{r['aug_dihedral']}"
                assert name.split("|||")[2] == "".join(str(v) for v in r["aug_value_map"])
            at_origin[r["puzzle_index"]] |= r["aug_offset"] == [0, 0]
            if split == "train":
                puzzle_rows[(r["source_id"], r["puzzle_identifier"])].append((x[i].tobytes(), y[i].tobytes()))
        assert all(at_origin.values()), "each puzzle keeps one example at (0, 0)"
    assert seen_ids["test"] <= seen_ids["train"]  # test variants reuse the embedding learned on their demos
    offsets = pq.read_table(out / "train.parquet", columns=["aug_offset"]).column("aug_offset").to_pylist()
    assert sum(o != [0, 0] for o in offsets) > len(offsets) // 2  # the train split is translated
    # variants of one task are distinct puzzles (dedup)
    per_task: dict[str, set[bytes]] = defaultdict(set)
    for (task_id, _), rows in puzzle_rows.items():
        key = b"".join(sorted(a + b for a, b in rows))
        assert key not in per_task[task_id]
        per_task[task_id].add(key)


def test_arc_dedup_stops_at_the_number_of_distinct_variants() -> None:
    # a grid of one non-black colour, symmetric under every dihedral transform: only 9 distinct variants exist
    grid = np.full((3, 3), 5, np.uint8)
    variants = arc_variants([(grid, grid)], num_aug=50, rng=group_rng(0, 0))
    assert len(variants) == 9
    assert len({int(v.colour_map[5]) for v in variants}) == 9


def _expected_canvas(grid: np.ndarray, record: dict) -> np.ndarray:
    """The official rendering, written out cell by cell: colour map, dihedral, +2, placed at the offset, EOS (1) on
    the row below and the column right of the grid, PAD (0) elsewhere."""
    shown = dihedral(np.asarray(record["aug_value_map"], np.uint8)[grid], record["aug_dihedral"])
    r0, c0 = record["aug_offset"]
    canvas = np.zeros((30, 30), np.uint8)
    h, w = shown.shape
    for r in range(h):
        for c in range(w):
            canvas[r0 + r, c0 + c] = shown[r, c] + 2
    for c in range(w):
        if r0 + h < 30:
            canvas[r0 + h, c0 + c] = 1
    for r in range(h):
        if c0 + w < 30:
            canvas[r0 + r, c0 + w] = 1
    return canvas.reshape(-1)


def test_arc_canvases_match_the_official_rendering(shared_datasets: Path, tmp_path: Path) -> None:
    kaggle = tmp_path / "kaggle"
    kaggle.mkdir()
    for subset in ("training", "evaluation", "concept"):  # a few real tasks per subset, incl. 30x30 grids
        challenges, solutions = (
            json.loads((shared_datasets / arc.KAGGLE_DIR / f"arc-agi_{subset}_{kind}.json").read_text())
            for kind in ("challenges", "solutions")
        )
        big = [k for k in sorted(challenges) if any(len(p["input"]) == 30 for p in challenges[k]["train"])][:2]
        chosen = sorted(set(sorted(challenges)[:4]) | set(big))
        for kind, data in (("challenges", challenges), ("solutions", solutions)):
            (kaggle / f"arc-agi_{subset}_{kind}.json").write_text(json.dumps({k: data[k] for k in chosen}))
    out = build_dataset(
        "arc-agi-1", {"num_aug": 20, "val_tasks": 0, "kaggle_dir": str(kaggle)}, out_root=tmp_path / "out"
    )
    tasks = {
        t.task_id: t for t in arc.load_recipe(("training", "evaluation", "concept"), "evaluation", "kaggle", kaggle, {})
    }
    assert any(max(g.shape) == 30 for t in tasks.values() for p in t.train for g in p)
    for split in ("train", "test"):
        table = pq.read_table(out / f"{split}.parquet")
        x, y = _tokens(table, "inputs"), _tokens(table, "labels")
        for i, r in enumerate(table.drop(["inputs", "labels"]).to_pylist()):
            task = tasks[r["source_id"]]
            grid_in, grid_out = (task.train if r["pair_kind"] == "train" else task.test)[r["pair_index"]]
            assert np.array_equal(x[i], _expected_canvas(grid_in, r)), (split, i)
            assert np.array_equal(y[i], _expected_canvas(grid_out, r)), (split, i)
