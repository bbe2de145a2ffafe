"""The maze BFS reproduces the official Maze-Hard labels and the shortest-path check accepts/rejects correctly."""

from __future__ import annotations

import numpy as np
import pytest

from trm.data.maze_solver import GOAL, OPEN, PATH, START, WALL, bfs_distance, bfs_label, shortest_path_problem


def _load(shared_datasets, split: str) -> tuple[np.ndarray, np.ndarray]:
    folder = shared_datasets / "maze-hard" / "npy" / split
    return np.load(folder / "all__inputs.npy"), np.load(folder / "all__labels.npy")


def _grid(text: str) -> np.ndarray:
    """Hand-written maze from HRM characters ('#', ' ', 'S', 'G', 'o'), one string per row."""
    lookup = {"#": WALL, " ": OPEN, "S": START, "G": GOAL, "o": PATH}
    return np.array([[lookup[ch] for ch in row] for row in text.split("|")], dtype=np.uint8)


@pytest.mark.parametrize("split", ["train", "test"])
def test_bfs_label_reproduces_every_official_label(shared_datasets, split):
    inputs, labels = _load(shared_datasets, split)
    assert inputs.shape == (1000, 900)
    mismatches = [
        i for i, (x, y) in enumerate(zip(inputs, labels, strict=True)) if not np.array_equal(bfs_label(x, 30, 30), y)
    ]
    assert mismatches == []


@pytest.mark.parametrize("split", ["train", "test"])
def test_official_labels_are_valid_shortest_paths(shared_datasets, split):
    inputs, labels = _load(shared_datasets, split)
    problems = [shortest_path_problem(x, y, 30, 30) for x, y in zip(inputs, labels, strict=True)]
    assert problems == [None] * len(problems)
    distances = np.array([bfs_distance(x, 30, 30) for x in inputs])
    # documented statistics of the real set: one 'o' per step except the last, distances 109..153
    assert np.array_equal((labels == PATH).sum(axis=1), distances - 1)
    assert distances.min() >= 109 and distances.max() <= 153


def test_hand_made_maze_uses_the_official_neighbour_order():
    # six shortest paths from S to G; with the official order (down, left, right, up) BFS discovers (1,0) before
    # (0,1), (2,0) before (1,1), and G first from (2,1), so the traced path goes down, down, right, right
    maze = _grid("S  |   |  G")
    label = bfs_label(maze, 3, 3)
    expected = _grid("S  |o  |ooG")
    assert np.array_equal(label, expected)
    assert bfs_distance(maze, 3, 3) == 4
    assert shortest_path_problem(maze, label, 3, 3) is None
    # the other shortest path is also accepted
    assert shortest_path_problem(maze, _grid("Soo|  o|  G"), 3, 3) is None


def test_flat_and_2d_inputs_agree():
    maze = _grid("S #|  #|  G")
    flat = bfs_label(maze.reshape(-1), 3, 3)
    assert flat.shape == (9,)
    assert np.array_equal(flat, bfs_label(maze, 3, 3).reshape(-1))


@pytest.mark.parametrize(
    ("label_text", "reason_part"),
    [
        ("S  |o  | oG", "needs 3"),  # one 'o' missing
        ("Soo|o o|ooG", "needs 3"),  # too many 'o'
        ("Soo|   |  G", "needs 3"),  # path stops short of G
        ("S  |oo |o G", "single chain"),  # right count, but it branches and never reaches G
    ],
)
def test_broken_paths_are_rejected(label_text, reason_part):
    maze = _grid("S  |   |  G")
    assert shortest_path_problem(maze, _grid("S  |ooo|  G"), 3, 3) is None  # a different shortest path is fine
    problem = shortest_path_problem(maze, _grid(label_text), 3, 3)
    assert problem is not None and reason_part in problem


def test_disconnected_chain_with_right_length_is_rejected():
    maze = _grid("S    |     |    G")
    # 5 'o' cells = distance 6 - 1, but they do not form one chain from S to G
    label = _grid("Soo  |  o  |oo  G")
    assert (label == PATH).sum() == 5
    problem = shortest_path_problem(maze, label, 3, 5)
    assert problem is not None and "chain" in problem


def test_path_through_wall_and_changed_cells_are_named():
    maze = _grid("S# |   |  G")
    on_wall = _grid("So |o  |ooG")
    problem = shortest_path_problem(maze, on_wall, 3, 3)
    assert problem is not None and "not an open cell" in problem and "row 0, col 1" in problem
    moved_goal = _grid("S# |o  |oG ")
    problem = shortest_path_problem(maze, moved_goal, 3, 3)
    assert problem is not None and "differs from input at (row 2, col 1)" in problem


def test_bad_grids_raise_clear_errors():
    with pytest.raises(ValueError, match="exactly one S"):
        bfs_label(_grid("S S|   |  G"), 3, 3)
    with pytest.raises(ValueError, match="exactly one G"):
        bfs_distance(_grid("S  |   |   "), 3, 3)
    with pytest.raises(ValueError, match="expected 3x3"):
        bfs_label(np.ones(8, np.uint8), 3, 3)
    with pytest.raises(ValueError, match="token 7"):
        bfs_label(np.array([3, 4, 7, 2], np.uint8), 2, 2)
    with pytest.raises(ValueError, match="not reachable"):
        bfs_label(_grid("S# |## |  G"), 3, 3)
    assert bfs_distance(_grid("S# |## |  G"), 3, 3) == -1
    assert "not reachable" in shortest_path_problem(_grid("S# |## |  G"), _grid("S# |## |  G"), 3, 3)
