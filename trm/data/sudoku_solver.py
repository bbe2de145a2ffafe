"""Sudoku rules, solution counting and a difficulty rating for N×N grids, N ∈ {4, 6, 9}: one deterministic
depth-first solver (numba). Grids are raw digits (0 blank, 1..N), not model tokens. How the search and the rating
work: docs/architecture.md ("Design: the data")."""

from __future__ import annotations

import numpy as np
from numba import njit

BOX_SHAPES: dict[int, tuple[int, int]] = {4: (2, 2), 6: (2, 3), 9: (3, 3)}  # size -> (box rows, box cols)


def box_shape(size: int) -> tuple[int, int]:
    """(rows, cols) of one box for an N×N Sudoku; raises ValueError for unsupported sizes."""
    if size not in BOX_SHAPES:
        raise ValueError(f"unsupported Sudoku size {size}; supported sizes are {sorted(BOX_SHAPES)}")
    return BOX_SHAPES[size]


@njit(cache=True)
def _search(grid_in, n, box_r, box_c, limit, value_order):
    """Depth-first search (MRV cell choice, naked singles, each tried candidate of a decision = one guess).

    Returns (solutions found (capped at ``limit``), guesses made before the first solution (-1 if none),
    first solution (zeros if none)). ``value_order[cell, k]`` is the k-th digit tried at a decision on ``cell``.
    """
    cells = n * n
    full = (1 << n) - 1
    grid = grid_in.astype(np.int64)
    row_used = np.zeros(n, dtype=np.int64)
    col_used = np.zeros(n, dtype=np.int64)
    box_used = np.zeros(n, dtype=np.int64)
    boxes_per_row = n // box_c
    box_of = np.empty(cells, dtype=np.int64)
    for i in range(cells):
        r, c = i // n, i % n
        box_of[i] = (r // box_r) * boxes_per_row + c // box_c
    solution = np.zeros(cells, dtype=np.uint8)
    for i in range(cells):
        d = grid[i]
        if d == 0:
            continue
        bit = 1 << (d - 1)
        r, c, b = i // n, i % n, box_of[i]
        if (row_used[r] & bit) or (col_used[c] & bit) or (box_used[b] & bit):
            return 0, -1, solution  # the clues already break a rule
        row_used[r] |= bit
        col_used[c] |= bit
        box_used[b] |= bit

    trail = np.empty(cells, dtype=np.int64)  # cells placed, in order, for undo
    trail_len = 0
    dec_cell = np.empty(cells, dtype=np.int64)  # decision stack
    dec_next = np.empty(cells, dtype=np.int64)  # next index into value_order to try
    dec_trail = np.empty(cells, dtype=np.int64)  # trail length before the decision
    depth = 0
    solutions = 0
    first_guesses = -1
    guesses = 0
    while True:
        best, best_count, best_mask = -1, n + 1, 0  # MRV: first cell (row-major) with the fewest candidates
        for i in range(cells):
            if grid[i] != 0:
                continue
            r, c = i // n, i % n
            mask = full & ~(row_used[r] | col_used[c] | box_used[box_of[i]])
            cnt = 0
            m = mask
            while m:
                m &= m - 1
                cnt += 1
            if cnt < best_count:
                best, best_count, best_mask = i, cnt, mask
                if cnt <= 1:
                    break
        if best < 0:  # complete grid
            solutions += 1
            if solutions == 1:
                first_guesses = guesses
                for i in range(cells):
                    solution[i] = grid[i]
            if solutions >= limit:
                return solutions, first_guesses, solution
        elif best_count == 1:  # naked single: forced, not a guess
            d = 1
            while not (best_mask >> (d - 1)) & 1:
                d += 1
            bit = 1 << (d - 1)
            grid[best] = d
            row_used[best // n] |= bit
            col_used[best % n] |= bit
            box_used[box_of[best]] |= bit
            trail[trail_len] = best
            trail_len += 1
            continue
        elif best_count >= 2:  # open a decision; its first value is tried below
            dec_cell[depth] = best
            dec_next[depth] = 0
            dec_trail[depth] = trail_len
            depth += 1
        # after a solution, a dead end (0 candidates) or a new decision:
        # try the next untried value of the top decision, unwinding exhausted decisions
        placed = False
        while depth > 0 and not placed:
            top = depth - 1
            while trail_len > dec_trail[top]:  # undo everything placed since this decision
                trail_len -= 1
                i = trail[trail_len]
                bit = 1 << (grid[i] - 1)
                row_used[i // n] &= ~bit
                col_used[i % n] &= ~bit
                box_used[box_of[i]] &= ~bit
                grid[i] = 0
            cell = dec_cell[top]
            r, c = cell // n, cell % n
            mask = full & ~(row_used[r] | col_used[c] | box_used[box_of[cell]])
            while dec_next[top] < n:
                d = value_order[cell, dec_next[top]]
                dec_next[top] += 1
                bit = 1 << (d - 1)
                if mask & bit:
                    guesses += 1
                    grid[cell] = d
                    row_used[r] |= bit
                    col_used[c] |= bit
                    box_used[box_of[cell]] |= bit
                    trail[trail_len] = cell
                    trail_len += 1
                    placed = True
                    break
            if not placed:
                depth -= 1
        if not placed:
            return solutions, first_guesses, solution


_ASCENDING: dict[int, np.ndarray] = {}


def _ascending_order(size: int) -> np.ndarray:
    """Trial order "digits ascending" for every cell (read-only, cached per size)."""
    if size not in _ASCENDING:
        order = np.tile(np.arange(1, size + 1, dtype=np.int64), (size * size, 1))
        order.setflags(write=False)
        _ASCENDING[size] = order
    return _ASCENDING[size]


def _as_grid(grid: np.ndarray, size: int, what: str, allow_blank: bool) -> np.ndarray:
    box_shape(size)
    arr = np.asarray(grid).reshape(-1)
    if arr.size != size * size:
        raise ValueError(f"{what} has {arr.size} cells, expected {size * size} for a {size}x{size} Sudoku")
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{what} must hold integers, got dtype {arr.dtype}")
    low = 0 if allow_blank else 1
    bad = np.flatnonzero((arr < low) | (arr > size))
    if bad.size:
        r, c = divmod(int(bad[0]), size)
        allowed = f"{low}..{size}"
        raise ValueError(f"{what} cell r{r + 1}c{c + 1} holds {int(arr[bad[0]])}, expected {allowed}")
    return np.ascontiguousarray(arr.astype(np.uint8))


def solution_problem(answer: np.ndarray, size: int) -> str | None:
    """None if ``answer`` is a complete valid N×N grid; otherwise what is wrong (which row/column/box)."""
    try:
        grid = _as_grid(answer, size, "answer", allow_blank=False).reshape(size, size)
    except ValueError as err:
        return str(err)
    br, bc = box_shape(size)
    for r in range(size):
        problem = _unit_problem(grid[r], f"row {r + 1}")
        if problem:
            return problem
    for c in range(size):
        problem = _unit_problem(grid[:, c], f"column {c + 1}")
        if problem:
            return problem
    for b in range(size):
        r0, c0 = (b // (size // bc)) * br, (b % (size // bc)) * bc
        problem = _unit_problem(grid[r0 : r0 + br, c0 : c0 + bc].reshape(-1), f"box {b + 1}")
        if problem:
            return problem
    return None


def _unit_problem(values: np.ndarray, name: str) -> str | None:
    counts = np.bincount(values, minlength=len(values) + 1)
    repeated = np.flatnonzero(counts[1:] > 1)
    if repeated.size:
        return f"{name} contains digit {int(repeated[0]) + 1} {int(counts[repeated[0] + 1])} times"
    return None


def clue_conflict(question: np.ndarray, answer: np.ndarray) -> str | None:
    """None if every clue (non-zero cell) of ``question`` equals ``answer`` there; otherwise the first conflict."""
    q, a = np.asarray(question).reshape(-1), np.asarray(answer).reshape(-1)
    if q.size != a.size:
        return f"question has {q.size} cells but answer has {a.size}"
    size = round(q.size**0.5)
    bad = np.flatnonzero((q != 0) & (q != a))
    if bad.size:
        r, c = divmod(int(bad[0]), size)
        return f"cell r{r + 1}c{c + 1}: clue {int(q[bad[0]])} but answer {int(a[bad[0]])}"
    return None


def count_solutions(question: np.ndarray, size: int, limit: int = 2) -> int:
    """Number of solutions of ``question``, counting stops at ``limit`` (so 2 means "not unique")."""
    grid = _as_grid(question, size, "question", allow_blank=True)
    br, bc = box_shape(size)
    found, _, _ = _search(grid, size, br, bc, limit, _ascending_order(size))
    return int(found)


def solve(question: np.ndarray, size: int) -> np.ndarray | None:
    """The first solution the rating solver finds (uint8 [N*N]), or None if there is none."""
    grid = _as_grid(question, size, "question", allow_blank=True)
    br, bc = box_shape(size)
    found, _, solution = _search(grid, size, br, bc, 1, _ascending_order(size))
    return solution if found else None


def rate(question: np.ndarray, size: int) -> int:
    """Guesses the deterministic solver makes before it finds the (first) solution (0 = naked singles suffice).
    Raises ValueError if the puzzle has no solution."""
    grid = _as_grid(question, size, "question", allow_blank=True)
    br, bc = box_shape(size)
    found, first_guesses, _ = _search(grid, size, br, bc, 1, _ascending_order(size))
    if not found:
        raise ValueError("Sudoku has no solution, so it has no rating")
    return int(first_guesses)


def random_full_grid(size: int, rng: np.random.Generator) -> np.ndarray:
    """A random complete grid: the search on an empty grid with digits tried in a random order per cell
    (drawn from ``rng``, so the result is a pure function of the generator state). Not exactly uniform over grids."""
    br, bc = box_shape(size)
    order = np.argsort(rng.random((size * size, size)), axis=1, kind="stable").astype(np.int64) + 1
    found, _, solution = _search(np.zeros(size * size, np.uint8), size, br, bc, 1, order)
    assert found == 1, "an empty grid always has a solution"
    return solution
