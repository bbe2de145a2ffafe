"""Seeded generator of Maze-Hard-like sets at any size: iid walls, S and G anywhere, a minimum path length, every
wall layout distinct up to the dihedral symmetries. ``min_path_len`` counts the path's cells including S and G
(BFS distance + 1). Model, speed-up and measurements: docs/architecture.md ("Design: the data")."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numba import njit

from trm.data.maze_solver import _DC, _DR, GOAL, OPEN, START, WALL, bfs_label

MAX_ATTEMPTS_PER_MAZE = 1_000_000  # give up (with an error) after this many candidates per requested maze


@dataclass(frozen=True)
class MazeSet:
    """Generated mazes: ``inputs``/``labels`` uint8 [n, rows*cols] maze tokens, ``distances`` int32 [n] BFS steps."""

    rows: int
    cols: int
    inputs: np.ndarray
    labels: np.ndarray
    distances: np.ndarray

    def __len__(self) -> int:
        return int(self.inputs.shape[0])


def layout_key(walls: np.ndarray) -> bytes:
    """Canonical bytes of a wall layout (bool [rows, cols]) up to the dihedral transforms its shape allows."""
    variants = [walls, walls[::-1], walls[:, ::-1], walls[::-1, ::-1]]
    if walls.shape[0] == walls.shape[1]:
        variants += [v.T for v in variants]
    return min(np.packbits(np.ascontiguousarray(v)).tobytes() for v in variants)


@njit(cache=True)
def _new_scratch(n):
    """Scratch arrays of one search: distances from S / G (-1 unseen), two queues, touched cells."""
    return np.full((2, n), -1, dtype=np.int32), np.empty((2, n), dtype=np.int64), np.empty(n, dtype=np.int64)


@njit(cache=True)
def _candidate(rng, rows, cols, low, high, min_distance, state, dist, queue, touched, dr, dc):
    """Draw one candidate (density, S, G) and decide it with a lazy bidirectional BFS.

    The search expands one whole level of the smaller frontier at a time and reveals a cell's wall bit (into
    ``state``: -1 unknown, 0 open, 1 wall) only when it first looks at the cell. It stops as soon as the distance
    is known exactly, a path shorter than ``min_distance`` has been found, or one side's component is exhausted.
    Returns (start, goal, distance or -1 when rejected, p, number of touched cells). ``dist`` is left clean
    (all -1); ``state`` keeps the revealed cells, listed in ``touched``.
    """
    n = rows * cols
    unknown = n + 1  # larger than any distance
    p = low + (high - low) * rng.random()
    start = rng.integers(0, n)
    goal = rng.integers(0, n - 1)
    if goal >= start:
        goal += 1
    state[start] = 0
    state[goal] = 0
    touched[0] = start
    touched[1] = goal
    n_touched = 2
    head = np.zeros(2, dtype=np.int64)
    tail = np.ones(2, dtype=np.int64)
    level = np.zeros(2, dtype=np.int64)
    dist[0, start] = 0
    dist[1, goal] = 0
    queue[0, 0] = start
    queue[1, 0] = goal
    best = unknown  # shortest S-G walk seen where the two searches meet (an upper bound on the distance)
    distance = -1
    while True:
        # every S-G path of length <= level[0] + level[1] has a cell both searches have reached, so once the best
        # meeting is no longer than level[0] + level[1] + 1 it is the exact distance
        if best <= level[0] + level[1] + 1:
            distance = best
            break
        if best < min_distance:
            break  # a path already too short: reject
        if head[0] == tail[0] or head[1] == tail[1]:
            distance = best if best < unknown else -1  # one component exhausted (then best is exact too)
            break
        side = 0 if tail[0] - head[0] <= tail[1] - head[1] else 1
        other = 1 - side
        level_end = tail[side]
        while head[side] < level_end:
            cell = queue[side, head[side]]
            head[side] += 1
            r, c = cell // cols, cell % cols
            for k in range(4):
                nr, nc = r + dr[k], c + dc[k]
                if nr < 0 or nr >= rows or nc < 0 or nc >= cols:
                    continue
                nxt = nr * cols + nc
                if state[nxt] < 0:
                    state[nxt] = 1 if rng.random() < p else 0
                    touched[n_touched] = nxt
                    n_touched += 1
                if state[nxt] == 1 or dist[side, nxt] >= 0:
                    continue
                dist[side, nxt] = dist[side, cell] + 1
                if dist[other, nxt] >= 0:
                    best = min(best, dist[side, nxt] + dist[other, nxt])
                queue[side, tail[side]] = nxt
                tail[side] += 1
        level[side] += 1
    for k in range(n_touched):
        dist[0, touched[k]] = -1
        dist[1, touched[k]] = -1
    if distance >= 0 and distance < min_distance:
        distance = -1
    return start, goal, distance, p, n_touched


@njit(cache=True)
def _draw_accepted(rng, rows, cols, low, high, min_distance, max_attempts, state, dr, dc):
    """Draw candidates until one has BFS distance >= ``min_distance``; then reveal its remaining cells in index
    order. The decision depends only on the complete iid grid, not on the order cells are revealed in, so accepted
    mazes follow exactly the distribution of drawing every cell first. Returns (start, goal, distance, attempts);
    distance -1 if ``max_attempts`` ran out. On success ``state`` holds 1 (wall) / 0 (open) per cell."""
    n = rows * cols
    dist, queue, touched = _new_scratch(n)
    state[:] = -1
    for attempt in range(1, max_attempts + 1):
        start, goal, distance, p, n_touched = _candidate(
            rng, rows, cols, low, high, min_distance, state, dist, queue, touched, dr, dc
        )
        if distance >= 0:
            for i in range(n):
                if state[i] < 0:
                    state[i] = 1 if rng.random() < p else 0
            return start, goal, distance, attempt
        for k in range(n_touched):
            state[touched[k]] = -1
    return -1, -1, -1, max_attempts


def _generate(
    rows: int,
    cols: int,
    count: int,
    rng: np.random.Generator,
    min_path_len: int,
    density: tuple[float, float],
    layouts_seen: set[bytes],
    what: str,
    progress: Callable[[int], None] | None,
) -> tuple[MazeSet, int]:
    n = rows * cols
    inputs = np.zeros((count, n), dtype=np.uint8)
    labels = np.zeros((count, n), dtype=np.uint8)
    distances = np.zeros(count, dtype=np.int32)
    kept, attempts = 0, 0
    max_attempts = MAX_ATTEMPTS_PER_MAZE * max(count, 1)
    min_distance = min_path_len - 1
    state = np.empty(n, dtype=np.int8)
    while kept < count:
        start, goal, distance, used = _draw_accepted(
            rng, rows, cols, density[0], density[1], min_distance, max_attempts - attempts, state, _DR, _DC
        )
        attempts += used
        if distance < 0:
            raise ValueError(
                f"{what}: only {kept} of {count} {rows}x{cols} mazes with path length >= {min_path_len} found "
                f"in {max_attempts} candidates; lower min_path_len"
            )
        walls = state == 1
        grid = np.where(walls, np.uint8(WALL), np.uint8(OPEN))
        grid[start], grid[goal] = START, GOAL
        key = layout_key(walls.reshape(rows, cols))
        if key in layouts_seen:
            continue
        layouts_seen.add(key)
        inputs[kept], labels[kept], distances[kept] = grid, bfs_label(grid, rows, cols), distance
        kept += 1
        if progress is not None:
            progress(kept)
    return MazeSet(rows=rows, cols=cols, inputs=inputs, labels=labels, distances=distances), attempts


def generate_maze_split(
    rows: int,
    cols: int,
    n_train: int,
    n_test: int,
    seed: int,
    min_path_len: int,
    density: tuple[float, float] = (0.28, 0.45),
    progress: Callable[[int], None] | None = None,
) -> tuple[MazeSet, MazeSet]:
    """Train and test maze sets with all wall layouts distinct (also across the sets, up to dihedral transforms).
    ``min_path_len`` counts path cells including S and G (BFS distance + 1)."""
    train, test, _ = generate_maze_split_with_stats(rows, cols, n_train, n_test, seed, min_path_len, density, progress)
    return train, test


def generate_maze_splits(
    rows: int,
    cols: int,
    counts: tuple[int, int, int],
    seed: int,
    min_path_len: int,
    density: tuple[float, float] = (0.28, 0.45),
    progress: Callable[[int], None] | None = None,
) -> tuple[MazeSet, MazeSet, MazeSet]:
    """Train, validation and test sets for ``counts`` = (n_train, n_val, n_test), every wall layout distinct
    across all three (up to dihedral transforms). Validation is drawn last, so train and test do not depend on it."""
    n_train, n_val, n_test = counts
    if n_val < 0:
        raise ValueError(f"maze counts must be non-negative, got n_val={n_val}")
    train, test, _, rng, seen = _train_and_test(rows, cols, n_train, n_test, seed, min_path_len, density, progress)
    val, _ = _generate(rows, cols, n_val, rng, min_path_len, _density(density), seen, "val", progress)
    return train, val, test


def _density(density: tuple[float, float]) -> tuple[float, float]:
    return float(density[0]), float(density[1])


def generate_maze_split_with_stats(
    rows: int,
    cols: int,
    n_train: int,
    n_test: int,
    seed: int,
    min_path_len: int,
    density: tuple[float, float] = (0.28, 0.45),
    progress: Callable[[int], None] | None = None,
) -> tuple[MazeSet, MazeSet, int]:
    """``generate_maze_split`` plus the number of candidates drawn (acceptance rate = kept / candidates)."""
    train, test, attempts, _, _ = _train_and_test(rows, cols, n_train, n_test, seed, min_path_len, density, progress)
    return train, test, attempts


def _train_and_test(
    rows: int,
    cols: int,
    n_train: int,
    n_test: int,
    seed: int,
    min_path_len: int,
    density: tuple[float, float],
    progress: Callable[[int], None] | None,
) -> tuple[MazeSet, MazeSet, int, np.random.Generator, set[bytes]]:
    """The two sets, the candidates drawn, and the generator and layouts seen (for a further set)."""
    if rows < 1 or cols < 1 or rows * cols < 2:
        raise ValueError(f"maze must have at least two cells, got {rows}x{cols}")
    if n_train < 0 or n_test < 0:
        raise ValueError(f"maze counts must be non-negative, got n_train={n_train}, n_test={n_test}")
    lo, hi = _density(density)
    if not 0.0 <= lo <= hi < 1.0:
        raise ValueError(f"density range must satisfy 0 <= low <= high < 1, got {density}")
    if min_path_len < 2:
        raise ValueError(f"min_path_len counts S and G, so it must be >= 2, got {min_path_len}")
    if min_path_len > rows * cols:
        raise ValueError(f"min_path_len {min_path_len} exceeds the {rows * cols} cells of a {rows}x{cols} maze")
    rng = np.random.default_rng(seed)
    seen: set[bytes] = set()
    train, a_train = _generate(rows, cols, n_train, rng, min_path_len, (lo, hi), seen, "train", progress)
    test, a_test = _generate(rows, cols, n_test, rng, min_path_len, (lo, hi), seen, "test", progress)
    return train, test, a_train + a_test, rng, seen
