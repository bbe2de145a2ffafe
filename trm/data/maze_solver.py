"""Breadth-first search on Maze-Hard token grids: the reference shortest path (``bfs_label`` breaks ties as the
official data was labelled) and a validity check for labels. Grids may be flat or 2-D; results keep the caller's
shape. Details: docs/architecture.md ("Design: the data")."""

from __future__ import annotations

import numpy as np
from numba import njit

PAD, WALL, OPEN, START, GOAL, PATH = 0, 1, 2, 3, 4, 5

# neighbour order of the official labelling: down, left, right, up
_DR = np.array([1, 0, 0, -1], dtype=np.int64)
_DC = np.array([0, -1, 1, 0], dtype=np.int64)


@njit(cache=True)
def _bfs_parents(flat: np.ndarray, rows: int, cols: int, start: int, dr: np.ndarray, dc: np.ndarray):
    """Distances (-1 = unreachable) and first-discovered parents of a BFS from ``start`` over non-wall cells."""
    n = rows * cols
    dist = np.full(n, -1, dtype=np.int32)
    parent = np.full(n, -1, dtype=np.int32)
    queue = np.empty(n, dtype=np.int32)
    head, tail = 0, 0
    dist[start] = 0
    queue[tail] = start
    tail += 1
    while head < tail:
        cell = queue[head]
        head += 1
        r, c = cell // cols, cell % cols
        for k in range(4):
            nr, nc = r + dr[k], c + dc[k]
            if nr < 0 or nr >= rows or nc < 0 or nc >= cols:
                continue
            nxt = nr * cols + nc
            if flat[nxt] == 1 or dist[nxt] >= 0:
                continue
            dist[nxt] = dist[cell] + 1
            parent[nxt] = cell
            queue[tail] = nxt
            tail += 1
    return dist, parent


@njit(cache=True)
def bfs_distances_from(flat: np.ndarray, rows: int, cols: int, start: int) -> np.ndarray:
    """BFS distance from ``start`` to every cell (int32, -1 = wall or unreachable). Used by the generator."""
    dist, _ = _bfs_parents(flat, rows, cols, start, _DR, _DC)
    return dist


def _flat_grid(grid: np.ndarray, rows: int, cols: int) -> np.ndarray:
    arr = np.ascontiguousarray(np.asarray(grid))
    if arr.size != rows * cols:
        raise ValueError(f"maze grid has {arr.size} cells, expected {rows}x{cols} = {rows * cols}")
    flat = arr.reshape(-1).astype(np.uint8, copy=False)
    bad = np.flatnonzero((flat < WALL) | (flat > PATH))
    if bad.size:
        r, c = divmod(int(bad[0]), cols)
        raise ValueError(f"maze cell (row {r}, col {c}) has token {int(flat[bad[0]])}, expected 1..5 (# ' ' S G o)")
    return flat


def _endpoint(flat: np.ndarray, token: int, name: str) -> int:
    where = np.flatnonzero(flat == token)
    if where.size != 1:
        raise ValueError(f"maze must have exactly one {name}, found {where.size}")
    return int(where[0])


def bfs_distance(grid: np.ndarray, rows: int, cols: int) -> int:
    """Shortest S→G path length in steps (moves), or -1 if G cannot be reached. Raises ValueError on a grid
    without exactly one S and one G or with tokens outside 1..5."""
    flat = _flat_grid(grid, rows, cols)
    start, goal = _endpoint(flat, START, "S"), _endpoint(flat, GOAL, "G")
    return int(bfs_distances_from(flat, rows, cols, start)[goal])


def bfs_label(grid: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """The official label of a maze: the input with ``o`` (5) on the cells strictly between S and G of the
    tie-broken BFS path (docs/architecture.md ("Design: the data")). Existing ``o`` cells in ``grid`` are cleared first.
    Raises ValueError if G is unreachable."""
    flat = _flat_grid(grid, rows, cols)
    start, goal = _endpoint(flat, START, "S"), _endpoint(flat, GOAL, "G")
    dist, parent = _bfs_parents(flat, rows, cols, start, _DR, _DC)
    if dist[goal] < 0:
        raise ValueError("maze goal G is not reachable from start S")
    label = np.where(flat == PATH, np.uint8(OPEN), flat).astype(np.uint8)
    cell = int(parent[goal])
    while cell != start:
        label[cell] = PATH
        cell = int(parent[cell])
    return label.reshape(np.shape(grid))


def shortest_path_problem(grid: np.ndarray, label: np.ndarray, rows: int, cols: int) -> str | None:
    """None if ``label`` is ``grid`` plus ``o`` cells forming one shortest S→G path; otherwise the reason.

    Valid means: every cell outside the path equals the input, ``o`` only on open input cells, and the ``o`` cells
    join S to G as a simple 4-connected chain (S and G each touch exactly one path cell, every path cell exactly
    two chain neighbours) whose length equals the BFS distance. Any shortest path is accepted, not only the BFS one.
    """
    try:
        flat_in = _flat_grid(grid, rows, cols)
        flat_lab = _flat_grid(label, rows, cols)
        start, goal = _endpoint(flat_in, START, "S"), _endpoint(flat_in, GOAL, "G")
    except ValueError as err:
        return str(err)
    if np.any(flat_in == PATH):
        return "maze input contains path cells 'o'"
    path_cells = flat_lab == PATH
    changed = np.flatnonzero((flat_lab != flat_in) & ~path_cells)
    if changed.size:
        r, c = divmod(int(changed[0]), cols)
        return f"label differs from input at (row {r}, col {c}) by more than an 'o' path cell"
    off_open = np.flatnonzero(path_cells & (flat_in != OPEN))
    if off_open.size:
        r, c = divmod(int(off_open[0]), cols)
        return f"path cell 'o' at (row {r}, col {c}) is not an open cell of the input"
    dist = int(bfs_distances_from(flat_in, rows, cols, start)[goal])
    if dist < 0:
        return "goal G is not reachable from start S"
    n_path = int(path_cells.sum())
    if n_path != dist - 1:
        return f"path has {n_path} 'o' cells but the shortest S->G path needs {dist - 1}"
    # walk the chain from S: each step must have exactly one unvisited chain neighbour until G is reached
    on_chain = path_cells.copy()
    on_chain[goal] = True
    cell, steps = start, 0
    visited = np.zeros_like(on_chain)
    visited[start] = True
    while cell != goal:
        r, c = divmod(cell, cols)
        nexts = [
            nr * cols + nc
            for nr, nc in ((r + 1, c), (r, c - 1), (r, c + 1), (r - 1, c))
            if 0 <= nr < rows and 0 <= nc < cols and on_chain[nr * cols + nc] and not visited[nr * cols + nc]
        ]
        if goal in nexts:
            nexts = [goal]
        if len(nexts) != 1:
            return f"path is not a single chain at (row {r}, col {c}): {len(nexts)} unvisited path neighbours"
        cell = nexts[0]
        visited[cell] = True
        steps += 1
    if steps != dist:
        return f"path from S to G takes {steps} steps, the shortest takes {dist}"
    return None
