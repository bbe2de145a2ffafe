"""Generated mazes: long enough, labelled by the official BFS, distinct and disjoint layouts, seeded, and the lazy
candidate test agrees with a plain BFS on the complete grid."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from trm.data.maze_gen import MazeSet, _candidate, _new_scratch, generate_maze_split, layout_key
from trm.data.maze_solver import _DC, _DR, GOAL, PATH, START, WALL, bfs_distance, bfs_label, shortest_path_problem


def _assert_valid(mazes: MazeSet, count: int, min_path_len: int) -> None:
    rows, cols = mazes.rows, mazes.cols
    assert mazes.inputs.shape == (count, rows * cols) and mazes.inputs.dtype == np.uint8
    assert mazes.labels.shape == (count, rows * cols) and mazes.labels.dtype == np.uint8
    for grid, label, distance in zip(mazes.inputs, mazes.labels, mazes.distances, strict=True):
        assert (grid == START).sum() == 1 and (grid == GOAL).sum() == 1
        assert set(np.unique(grid)) <= {WALL, 2, START, GOAL}
        assert bfs_distance(grid, rows, cols) == distance >= min_path_len - 1
        assert np.array_equal(label, bfs_label(grid, rows, cols))
        assert shortest_path_problem(grid, label, rows, cols) is None
        assert (label == PATH).sum() == distance - 1


def _layouts(mazes: MazeSet) -> list[bytes]:
    return [layout_key((g == WALL).reshape(mazes.rows, mazes.cols)) for g in mazes.inputs]


def test_small_split_is_valid_and_layouts_are_distinct_and_disjoint():
    train, test = generate_maze_split(10, 10, n_train=150, n_test=50, seed=0, min_path_len=12)
    _assert_valid(train, 150, 12)
    _assert_valid(test, 50, 12)
    keys_train, keys_test = _layouts(train), _layouts(test)
    assert len(set(keys_train)) == 150 and len(set(keys_test)) == 50
    assert not set(keys_train) & set(keys_test)
    walls = np.concatenate([(train.inputs == WALL).mean(1), (test.inputs == WALL).mean(1)])
    assert 0.25 < walls.mean() < 0.45  # densities drawn from (0.28, 0.45), shifted by the path condition


def test_rectangular_and_custom_density():
    train, test = generate_maze_split(6, 9, n_train=20, n_test=5, seed=3, min_path_len=8, density=(0.1, 0.2))
    _assert_valid(train, 20, 8)
    _assert_valid(test, 5, 8)
    assert (train.inputs == WALL).mean() < 0.3


def test_30x30_maze_hard_setting():
    train, test = generate_maze_split(30, 30, n_train=2, n_test=1, seed=1, min_path_len=110)
    _assert_valid(train, 2, 110)
    _assert_valid(test, 1, 110)


def test_lazy_candidate_decision_matches_full_grid_bfs():
    """Reveal the rest of each candidate's grid after the decision and compare with a plain BFS: an accepted
    candidate has exactly the returned distance, a rejected one is unreachable or too short."""
    rows, cols, min_distance = 12, 12, 20
    rng = np.random.default_rng(42)
    fill = np.random.default_rng(7)
    dist, queue, touched = _new_scratch(rows * cols)
    accepted = rejected_short = rejected_unreachable = 0
    for _ in range(3000):
        state = np.full(rows * cols, -1, np.int8)
        start, goal, distance, p, _ = _candidate(
            rng, rows, cols, 0.28, 0.45, min_distance, state, dist, queue, touched, _DR, _DC
        )
        assert (dist == -1).all()
        hidden = state < 0
        state[hidden] = fill.random(hidden.sum()) < p
        grid = np.where(state == 1, WALL, 2).astype(np.uint8)
        grid[start], grid[goal] = START, GOAL
        true_distance = bfs_distance(grid, rows, cols)
        if distance >= 0:
            assert distance == true_distance >= min_distance
            accepted += 1
        elif true_distance < 0:
            rejected_unreachable += 1
        else:
            assert true_distance < min_distance
            rejected_short += 1
    assert accepted > 10 and rejected_short > 100 and rejected_unreachable > 100


def test_same_seed_same_mazes_other_seed_other_mazes():
    first = generate_maze_split(8, 8, n_train=10, n_test=4, seed=5, min_path_len=10)
    again = generate_maze_split(8, 8, n_train=10, n_test=4, seed=5, min_path_len=10)
    other = generate_maze_split(8, 8, n_train=10, n_test=4, seed=6, min_path_len=10)
    for a, b in zip(first, again, strict=True):
        assert np.array_equal(a.inputs, b.inputs) and np.array_equal(a.labels, b.labels)
    assert not np.array_equal(first[0].inputs, other[0].inputs)


def test_seeded_output_is_pinned():
    """Cross-machine determinism: a pure function of the seed (PCG64 streams, integer BFS). The digest was
    recorded on 2026-11-23 with numpy 2.4.6 / numba 0.68.1."""
    train, test = generate_maze_split(10, 10, n_train=3, n_test=2, seed=0, min_path_len=12)
    digest = hashlib.sha256(train.inputs.tobytes() + test.inputs.tobytes()).hexdigest()
    assert digest == PINNED_10X10_DIGEST


def test_layout_key_is_invariant_under_dihedral_transforms():
    walls = np.random.default_rng(0).random((7, 7)) < 0.4
    key = layout_key(walls)
    for variant in (walls.T, walls[::-1], walls[:, ::-1], np.rot90(walls), np.rot90(walls, 3).T):
        assert layout_key(np.ascontiguousarray(variant)) == key
    changed = walls.copy()
    changed[0, 0] = not changed[0, 0]
    assert layout_key(changed) != key


def test_bad_arguments_fail_clearly():
    with pytest.raises(ValueError, match="min_path_len"):
        generate_maze_split(5, 5, 1, 1, seed=0, min_path_len=1)
    with pytest.raises(ValueError, match="density"):
        generate_maze_split(5, 5, 1, 1, seed=0, min_path_len=3, density=(0.5, 0.2))
    with pytest.raises(ValueError, match="exceeds the 25 cells"):
        generate_maze_split(5, 5, 1, 1, seed=0, min_path_len=26)
    with pytest.raises(ValueError, match="non-negative"):
        generate_maze_split(5, 5, -1, 1, seed=0, min_path_len=3)


PINNED_10X10_DIGEST = "090d26af3bc3cbceb7ff2fdc5663710d0b5d47a543d83afe0a62cd48b04c64b0"
