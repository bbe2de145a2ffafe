"""Equivalence of 9×9 Sudoku solution grids under the augmentation symmetries, via an invariant that is provably
identical for equivalent grids (so different invariants mean not equivalent). The proof and measurements:
docs/architecture.md ("Design: the data")."""

from __future__ import annotations

import itertools

import numpy as np
from numba import njit

SIZE, BAND = 9, 3


def _band_preserving_perms() -> np.ndarray:
    """All 1296 row orders that keep rows of a band together (int64 [1296, 9])."""
    perms = []
    for band_order in itertools.permutations(range(BAND)):
        for inner in itertools.product(list(itertools.permutations(range(BAND))), repeat=BAND):
            perms.append([band_order[b] * BAND + inner[b][k] for b in range(BAND) for k in range(BAND)])
    return np.asarray(perms, dtype=np.int64)


_PERMS = _band_preserving_perms()
_UPPER = np.array([(a, b) for a in range(SIZE) for b in range(a + 1, SIZE)], dtype=np.int64)  # 36 pairs


@njit(cache=True)
def _row_part(grid: np.ndarray, perms: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Canonical upper triangle of the row-pair cycle-type matrix (int64 [36]) of one 9×9 grid (digits 1..9)."""
    pos = np.empty((SIZE, SIZE + 1), dtype=np.int64)  # pos[row, digit] = column
    for r in range(SIZE):
        for c in range(SIZE):
            pos[r, grid[r, c]] = c
    codes = np.zeros((SIZE, SIZE), dtype=np.int64)
    seen = np.zeros(SIZE + 1, dtype=np.bool_)
    for i in range(SIZE):
        for j in range(i + 1, SIZE):
            seen[:] = False
            code = 0
            for start in range(1, SIZE + 1):
                if seen[start]:
                    continue
                length = 0
                d = start
                while not seen[d]:
                    seen[d] = True
                    d = grid[j, pos[i, d]]
                    length += 1
                code += 10 ** (length - 1)  # counts per cycle length, base 10 (at most 9 cycles)
            codes[i, j] = code
            codes[j, i] = code
    best = np.empty(upper.shape[0], dtype=np.int64)
    best[:] = np.iinfo(np.int64).max
    for p in range(perms.shape[0]):
        # compare lexicographically while building, stop at the first difference
        state = 0  # 0 equal so far, -1 smaller, 1 larger
        for k in range(upper.shape[0]):
            v = codes[perms[p, upper[k, 0]], perms[p, upper[k, 1]]]
            if v != best[k]:
                state = -1 if v < best[k] else 1
                break
        if state == -1:
            for k in range(upper.shape[0]):
                best[k] = codes[perms[p, upper[k, 0]], perms[p, upper[k, 1]]]
    return best


def _check_grids(answers: np.ndarray) -> np.ndarray:
    arr = np.asarray(answers)
    if arr.ndim == 1:
        arr = arr[None]
    arr = arr.reshape(arr.shape[0], -1)
    if arr.shape[1] != SIZE * SIZE:
        raise ValueError(f"symmetry invariants are defined for 9x9 grids (81 cells), got {arr.shape[1]} cells")
    if arr.size and (arr.min() < 1 or arr.max() > SIZE):
        raise ValueError("symmetry invariants need complete grids with digits 1..9 (no blanks)")
    return np.ascontiguousarray(arr.astype(np.int64)).reshape(-1, SIZE, SIZE)


def grid_invariant(answer: np.ndarray) -> bytes:
    """Invariant of one complete 9×9 grid (digits 1..9) under the augmentation symmetries, as hashable bytes."""
    return grid_invariants(answer)[0]


def grid_invariants(answers: np.ndarray) -> list[bytes]:
    """``grid_invariant`` of each grid of ``answers`` (uint8 [n, 81] or [n, 9, 9])."""
    out = []
    for grid in _check_grids(answers):
        rows = _row_part(np.ascontiguousarray(grid), _PERMS, _UPPER)
        cols = _row_part(np.ascontiguousarray(grid.T), _PERMS, _UPPER)
        first, second = sorted([tuple(rows.tolist()), tuple(cols.tolist())])
        out.append(np.asarray(first + second, dtype="<i8").tobytes())
    return out


def random_symmetry(answer: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Apply one random augmentation symmetry (relabel, band/row/stack/column permutations, transpose with
    p=0.5) to a 9×9 grid (0 stays 0, so puzzles work too). Independent of the builder's augmentation code, so
    tests of the invariant do not trust the code they check."""
    grid = np.asarray(answer).reshape(SIZE, SIZE)
    relabel = np.concatenate([[0], rng.permutation(SIZE) + 1]).astype(np.uint8)
    rows = _PERMS[rng.integers(len(_PERMS))]
    cols = _PERMS[rng.integers(len(_PERMS))]
    out = relabel[grid][rows][:, cols]
    if rng.random() < 0.5:
        out = out.T
    return np.ascontiguousarray(out).reshape(np.shape(answer))
