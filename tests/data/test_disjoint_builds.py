"""Held-out puzzles must stay held out after augmentation: no test solution grid may appear in a train split."""

from __future__ import annotations

import numpy as np
import pytest

from trm.data.build import build_dataset
from trm.data.loader import PuzzleDataset


def _grids(folder, split: str) -> set[bytes]:
    labels = PuzzleDataset.open(folder, split).labels.numpy()
    return {row.tobytes() for row in np.ascontiguousarray(labels)}


@pytest.mark.parametrize(
    ("name", "overrides"),
    [
        # 4x4: shuffles of the train grids cover all 288 grids, so without the guard most test grids would leak
        ("sudoku-4x4", {"train_count": 200, "test_count": 50, "num_aug": 30}),
        ("sudoku-6x6", {"train_count": 300, "test_count": 100, "num_aug": 100}),
    ],
)
def test_augmented_train_split_never_contains_a_test_grid(tmp_path, name, overrides):
    folder = build_dataset(name, overrides, out_root=tmp_path)
    train, test = _grids(folder, "train"), _grids(folder, "test")
    assert 0 < len(test) <= overrides["test_count"]  # several test puzzles may share one solution grid
    assert train.isdisjoint(test)
    ds = PuzzleDataset.open(folder, "train")
    # the guard drops only colliding copies: originals are all kept, and most copies survive
    assert ds.num_groups == overrides["train_count"]
    assert overrides["train_count"] < len(ds.labels) <= overrides["train_count"] * (overrides["num_aug"] + 1)
