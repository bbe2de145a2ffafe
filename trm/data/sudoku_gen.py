"""Seeded generator of N×N Sudoku sets (N ∈ {4, 6, 9}) with unique solutions, a difficulty floor and train/test
sets that do not share solution grids (for 9×9: not even up to the augmentation symmetries). Method, disjointness
and measured difficulty: docs/architecture.md ("Design: the data")."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numba import njit

from trm.data.sudoku_solver import _ascending_order, _search, box_shape, random_full_grid, rate, solution_problem
from trm.data.symmetry import grid_invariant, grid_invariants

HARD_MIN_RATING = 200  # floor for "hard" 9x9 sets: close to the real median (docs/architecture.md ("Design: the data"))
MAX_ATTEMPTS_WITHOUT_PROGRESS = 100_000  # give up (with an error) after this many candidates in a row are rejected


@dataclass(frozen=True)
class SudokuSet:
    """Generated puzzles: ``questions``/``answers`` uint8 [n, N*N] (0 blank, 1..N digits), ``ratings`` int32 [n]."""

    size: int
    questions: np.ndarray
    answers: np.ndarray
    ratings: np.ndarray

    def __len__(self) -> int:
        return int(self.questions.shape[0])


@njit(cache=True)
def _dig(solution, visit_order, n, box_r, box_c, value_order, max_blanks):
    """Remove clues in ``visit_order`` unless the puzzle would stop having exactly one solution; stop once
    ``max_blanks`` cells are blank."""
    question = solution.copy()
    blanks = 0
    for k in range(visit_order.shape[0]):
        if blanks >= max_blanks:
            break
        cell = visit_order[k]
        kept = question[cell]
        question[cell] = 0
        found, _, _ = _search(question, n, box_r, box_c, 2, value_order)
        if found != 1:
            question[cell] = kept
        else:
            blanks += 1
    return question


def dig_puzzle(solution: np.ndarray, size: int, rng: np.random.Generator, blanks: int | None = None) -> np.ndarray:
    """A puzzle with the unique solution ``solution``, digging cells in an order drawn from ``rng``: minimal (no
    clue can be dropped) by default, or with exactly ``blanks`` blank cells (at most what a minimal dig reaches)."""
    br, bc = box_shape(size)
    order = rng.permutation(size * size).astype(np.int64)
    limit = size * size if blanks is None else blanks
    return _dig(np.ascontiguousarray(solution, dtype=np.uint8), order, size, br, bc, _ascending_order(size), limit)


def all_grids(size: int) -> np.ndarray:
    """Every complete grid of a small size, in lexicographic order (288 for 4×4). Refuses other sizes."""
    if size != 4:
        raise ValueError(f"enumerating all {size}x{size} grids is not supported (only 4x4: 288 grids)")
    return _grids_4x4().copy()


_ALL_4X4: np.ndarray | None = None


def _grids_4x4() -> np.ndarray:
    global _ALL_4X4
    if _ALL_4X4 is None:
        _ALL_4X4 = _enumerate_4x4()
    return _ALL_4X4


def _enumerate_4x4() -> np.ndarray:
    """All 4×4 grids, grown row by row keeping only rows compatible with the columns and boxes so far."""
    rows = [np.asarray(p, dtype=np.uint8) for p in itertools.permutations(range(1, 5))]
    grids: list[list[np.ndarray]] = [[]]
    for r in range(4):
        grown = []
        for partial in grids:
            for row in rows:
                if any(np.any(prev == row) for prev in partial):
                    continue
                if r % 2 == 1:  # second row of a band: boxes (2x2) must not repeat digits
                    above = partial[-1]
                    if set(above[:2]) & set(row[:2]) or set(above[2:]) & set(row[2:]):
                        continue
                grown.append([*partial, row])
        grids = grown
    return np.stack([np.concatenate(g) for g in grids])


def _check_answers(answers: np.ndarray, size: int) -> np.ndarray:
    arr = np.asarray(answers)
    arr = arr.reshape(arr.shape[0], -1) if arr.ndim > 1 else arr.reshape(1, -1)
    for i, grid in enumerate(arr):
        problem = solution_problem(grid, size)
        if problem:
            raise ValueError(f"training answer {i}: {problem}")
    return arr.astype(np.uint8)


def _generate(
    size: int,
    count: int,
    rng: np.random.Generator,
    min_rating: int,
    next_grid: Callable[[], np.ndarray],
    grid_allowed: Callable[[np.ndarray], bool],
    what: str,
    progress: Callable[[int], None] | None,
    blanks: int | None = None,
) -> SudokuSet:
    """The shared loop: draw grid → dig → rate → keep if new, hard enough and allowed."""
    n_cells = size * size
    questions = np.zeros((count, n_cells), dtype=np.uint8)
    answers = np.zeros((count, n_cells), dtype=np.uint8)
    ratings = np.zeros(count, dtype=np.int32)
    seen: set[bytes] = set()
    kept, misses = 0, 0
    while kept < count:
        misses += 1
        if misses > MAX_ATTEMPTS_WITHOUT_PROGRESS:
            raise ValueError(
                f"{what}: found only {kept} of {count} distinct {size}x{size} puzzles with rating >= {min_rating}; "
                f"the last {MAX_ATTEMPTS_WITHOUT_PROGRESS} candidates were all rejected (duplicates, too easy or "
                "not disjoint from training); lower min_rating or the count"
            )
        solution = next_grid()
        question = dig_puzzle(solution, size, rng, blanks)
        if blanks is not None and int((question == 0).sum()) != blanks:
            continue  # this grid/order cannot lose that many clues and keep a unique solution
        key = question.tobytes()
        if key in seen:
            continue
        rating = rate(question, size)
        if rating < min_rating or not grid_allowed(solution):
            continue
        seen.add(key)
        questions[kept], answers[kept], ratings[kept] = question, solution, rating
        kept, misses = kept + 1, 0
        if progress is not None:
            progress(kept)
    return SudokuSet(size=size, questions=questions, answers=answers, ratings=ratings)


def _random_grid_source(size: int, rng: np.random.Generator) -> Callable[[], np.ndarray]:
    return lambda: random_full_grid(size, rng)


def _pool_grid_source(pool: np.ndarray, rng: np.random.Generator) -> Callable[[], np.ndarray]:
    return lambda: pool[int(rng.integers(len(pool)))]


def generate_sudoku_split(
    size: int,
    n_train: int,
    n_test: int,
    seed: int,
    min_rating: int = 0,
    progress: Callable[[int], None] | None = None,
    blanks: int | None = None,
) -> tuple[SudokuSet, SudokuSet]:
    """Train and test sets with disjoint solution grids (9×9: not equivalent under the augmentation symmetries).
    ``min_rating`` and ``blanks`` (None: minimal puzzles, else exactly that many blank cells) apply to both sets.
    ``progress`` (optional) is called with the running count of kept puzzles
    of the set being generated (train first, then test)."""
    train, _, test = generate_sudoku_splits(size, n_train, 0, n_test, seed, min_rating, progress, blanks)
    return train, test


def generate_sudoku_splits(
    size: int,
    n_train: int,
    n_val: int,
    n_test: int,
    seed: int,
    min_rating: int = 0,
    progress: Callable[[int], None] | None = None,
    blanks: int | None = None,
) -> tuple[SudokuSet, SudokuSet, SudokuSet]:
    """Train, validation and test sets whose solution grids are pairwise disjoint (9×9: not equivalent under the
    symmetries). Drawn in the order train, test, validation, so train and test do not depend on ``n_val`` (except
    for 4×4, whose 288 grids are divided between the three sets up front)."""
    box_shape(size)
    if min(n_train, n_val, n_test) < 0:
        raise ValueError(f"puzzle counts must be non-negative, got n_train={n_train}, n_val={n_val}, n_test={n_test}")
    rng = np.random.default_rng(seed)
    if size == 4:
        return _split_4x4(n_train, n_val, n_test, rng, min_rating, progress, blanks)
    train_grids: set[bytes] = set()

    def new_train_grid(grid: np.ndarray) -> bool:
        key = grid.tobytes()
        if key in train_grids:
            return False
        train_grids.add(key)
        return True

    def draw(count: int, allowed: Callable[[np.ndarray], bool], what: str) -> SudokuSet:
        return _generate(size, count, rng, min_rating, _random_grid_source(size, rng), allowed, what, progress, blanks)

    train = draw(n_train, new_train_grid, "train")
    test = draw(n_test, _disjoint_filter(train.answers, size), "test")
    val = draw(n_val, _disjoint_filter(np.concatenate([train.answers, test.answers]), size), "val")
    return train, val, test


def _split_4x4(
    n_train: int,
    n_val: int,
    n_test: int,
    rng: np.random.Generator,
    min_rating: int,
    progress: Callable[[int], None] | None,
    blanks: int | None,
) -> tuple[SudokuSet, SudokuSet, SudokuSet]:
    """4×4 has only 288 grids: each set gets its own slice of them, in proportion to its size (at least one)."""
    pool = _grids_4x4()[rng.permutation(len(_grids_4x4()))]
    total = max(n_train + n_val + n_test, 1)

    def share(count: int) -> int:
        return 0 if count == 0 else max(1, round(len(pool) * count / total))

    n_test_grids = min(share(n_test), len(pool) - (1 if n_train else 0))
    n_val_grids = min(share(n_val), len(pool) - n_test_grids - (1 if n_train else 0))
    if n_val and n_val_grids < 1:
        raise ValueError("no 4x4 grids are left for a validation set; lower test_count or train_count")
    test_pool = pool[:n_test_grids]
    val_pool = pool[n_test_grids : n_test_grids + n_val_grids]
    train_pool = pool[n_test_grids + n_val_grids :]

    def draw(count: int, grids: np.ndarray, what: str) -> SudokuSet:
        source = _pool_grid_source(grids, rng)
        return _generate(4, count, rng, min_rating, source, _always, what, progress, blanks)

    train, test = draw(n_train, train_pool, "train"), draw(n_test, test_pool, "test")
    return train, draw(n_val, val_pool, "val"), test


def _always(_grid: np.ndarray) -> bool:
    return True


def _disjoint_filter(train_answers: np.ndarray, size: int) -> Callable[[np.ndarray], bool]:
    """Predicate 'grid may be used for the test set': not a train grid (9×9: not equivalent to one)."""
    if size == 9:
        forbidden = set(grid_invariants(train_answers)) if len(train_answers) else set()
        return lambda grid: grid_invariant(grid) not in forbidden
    forbidden = {g.tobytes() for g in np.asarray(train_answers, dtype=np.uint8)}
    return lambda grid: grid.tobytes() not in forbidden


def generate_sudoku_disjoint_from(
    train_answers: np.ndarray,
    size: int,
    count: int,
    seed: int,
    min_rating: int = 0,
    progress: Callable[[int], None] | None = None,
) -> SudokuSet:
    """``count`` new puzzles whose solution grids are not in ``train_answers`` (uint8 [n, N*N], digits 1..N) and,
    for 9×9, not equivalent to any of them under the augmentation symmetries (e.g. a held-out test set for the
    real Sudoku-Extreme-1k training puzzles)."""
    box_shape(size)
    if count < 0:
        raise ValueError(f"count must be non-negative, got {count}")
    answers = _check_answers(train_answers, size)
    rng = np.random.default_rng(seed)
    allowed = _disjoint_filter(answers, size)
    if size == 4:
        free = [g for g in _grids_4x4() if allowed(g)]
        if not free:
            raise ValueError("every 4x4 grid is used by the training answers; no disjoint test set exists")
        source = _pool_grid_source(np.stack(free), rng)
        return _generate(size, count, rng, min_rating, source, allowed, "test", progress)
    return _generate(size, count, rng, min_rating, _random_grid_source(size, rng), allowed, "test", progress)
