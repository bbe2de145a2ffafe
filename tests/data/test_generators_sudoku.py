"""Generated Sudoku sets: unique, valid, rated, disjoint (9x9: also up to the augmentation symmetries), seeded."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from trm.data.sudoku_gen import SudokuSet, all_grids, generate_sudoku_disjoint_from, generate_sudoku_split
from trm.data.sudoku_solver import clue_conflict, count_solutions, rate, solution_problem
from trm.data.symmetry import grid_invariant, grid_invariants, random_symmetry


def _assert_valid_set(puzzles: SudokuSet, size: int, count: int, min_rating: int) -> None:
    cells = size * size
    assert puzzles.questions.shape == (count, cells) and puzzles.questions.dtype == np.uint8
    assert puzzles.answers.shape == (count, cells) and puzzles.answers.dtype == np.uint8
    assert puzzles.ratings.shape == (count,) and puzzles.ratings.dtype == np.int32
    assert len({q.tobytes() for q in puzzles.questions}) == count, "questions repeat inside a set"
    for question, answer, rating in zip(puzzles.questions, puzzles.answers, puzzles.ratings, strict=True):
        assert solution_problem(answer, size) is None
        assert clue_conflict(question, answer) is None
        assert count_solutions(question, size) == 1
        assert rating == rate(question, size) >= min_rating
        # minimal: dropping any single clue makes the solution non-unique
        clues = np.flatnonzero(question)
        for cell in clues[:: max(1, len(clues) // 4)]:
            weaker = question.copy()
            weaker[cell] = 0
            assert count_solutions(weaker, size) == 2


def _grid_keys(puzzles: SudokuSet) -> set[bytes]:
    return {a.tobytes() for a in puzzles.answers}


def _apply_primitives(grid: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random chain of the augmentation symmetries, built from explicit primitive moves (written here, not
    imported, so the test does not trust the code under test): relabel, swap bands, swap rows in a band, swap
    stacks, swap columns in a stack, transpose."""
    g = grid.reshape(9, 9).copy()
    for _ in range(12):
        move = rng.integers(6)
        a, b = rng.choice(3, size=2, replace=False)
        if move == 0:
            g = np.concatenate([[0], rng.permutation(9) + 1])[g]
        elif move == 1:
            order = np.arange(9).reshape(3, 3)
            order[[a, b]] = order[[b, a]]
            g = g[order.reshape(-1)]
        elif move == 2:
            band = rng.integers(3)
            rows = np.arange(9)
            rows[[band * 3 + a, band * 3 + b]] = rows[[band * 3 + b, band * 3 + a]]
            g = g[rows]
        elif move in (3, 4):
            g = _apply_primitives_transposed(g, move, a, b, rng)
        else:
            g = g.T.copy()
    return g.reshape(-1)


def _apply_primitives_transposed(g: np.ndarray, move: int, a: int, b: int, rng: np.random.Generator) -> np.ndarray:
    cols = np.arange(9)
    if move == 3:
        order = cols.reshape(3, 3)
        order[[a, b]] = order[[b, a]]
        return g[:, order.reshape(-1)]
    stack = rng.integers(3)
    cols[[stack * 3 + a, stack * 3 + b]] = cols[[stack * 3 + b, stack * 3 + a]]
    return g[:, cols]


def test_9x9_split_is_unique_rated_and_disjoint_under_symmetries():
    train, test = generate_sudoku_split(9, n_train=24, n_test=16, seed=5, min_rating=20)
    _assert_valid_set(train, 9, 24, 20)
    _assert_valid_set(test, 9, 16, 20)
    assert not (_grid_keys(train) & _grid_keys(test))
    assert not set(grid_invariants(train.answers)) & set(grid_invariants(test.answers))


def test_invariant_is_unchanged_by_every_symmetry(shared_datasets):
    answers = np.load(shared_datasets / "sudoku-extreme-1k" / "npy" / "train" / "all__labels.npy")[:40] - 1
    rng = np.random.default_rng(0)
    for grid in answers.astype(np.uint8):
        key = grid_invariant(grid)
        for _ in range(3):
            moved = _apply_primitives(grid, rng)
            assert solution_problem(moved, 9) is None
            assert grid_invariant(moved) == key
        assert grid_invariant(random_symmetry(grid, rng)) == key


def test_invariant_separates_random_grids():
    # random grids are almost never equivalent, so a useful invariant gives them distinct values
    _, puzzles = generate_sudoku_split(9, n_train=0, n_test=150, seed=2)
    assert len(set(grid_invariants(puzzles.answers))) == 150


def test_disjoint_from_real_training_answers_rejects_symmetric_copies(shared_datasets):
    folder = shared_datasets / "sudoku-extreme-1k" / "npy" / "train"
    train_answers = (np.load(folder / "all__labels.npy") - 1).astype(np.uint8)
    held_out = generate_sudoku_disjoint_from(train_answers, 9, count=12, seed=1, min_rating=30)
    _assert_valid_set(held_out, 9, 12, 30)
    assert not set(grid_invariants(held_out.answers)) & set(grid_invariants(train_answers))
    # a "training set" made of symmetric copies of the held-out grids must make all of them unusable
    rng = np.random.default_rng(3)
    disguised = np.stack([_apply_primitives(a, rng) for a in held_out.answers])
    assert not set(grid_invariants(held_out.answers)) - set(grid_invariants(disguised))


def test_generator_skips_candidates_equivalent_to_training():
    """Same seed, so the generator draws the same candidates: once their disguised copies are the training set,
    every one of them must be refused and replaced."""
    unrelated = generate_sudoku_split(9, n_train=1, n_test=0, seed=99)[0].answers
    first = generate_sudoku_disjoint_from(unrelated, 9, count=6, seed=8)
    rng = np.random.default_rng(1)
    disguised = np.stack([_apply_primitives(a, rng) for a in first.answers])
    assert not _grid_keys(first) & {d.tobytes() for d in disguised}  # the copies really look different
    second = generate_sudoku_disjoint_from(disguised, 9, count=6, seed=8)
    _assert_valid_set(second, 9, 6, 0)
    assert not _grid_keys(first) & _grid_keys(second)


@pytest.mark.parametrize(("size", "n_train", "n_test"), [(4, 300, 60), (6, 120, 40)])
def test_small_sizes_have_disjoint_grids(size, n_train, n_test):
    train, test = generate_sudoku_split(size, n_train=n_train, n_test=n_test, seed=9)
    _assert_valid_set(train, size, n_train, 0)
    _assert_valid_set(test, size, n_test, 0)
    assert not (_grid_keys(train) & _grid_keys(test))


def test_fixed_blank_count_gives_unique_non_minimal_puzzles():
    train, test = generate_sudoku_split(9, n_train=25, n_test=8, seed=3, blanks=30)
    for puzzles, count in ((train, 25), (test, 8)):
        assert puzzles.questions.shape == (count, 81)
        assert ((puzzles.questions == 0).sum(axis=1) == 30).all()
        assert len({q.tobytes() for q in puzzles.questions}) == count
        for question, answer in zip(puzzles.questions, puzzles.answers, strict=True):
            assert clue_conflict(question, answer) is None and count_solutions(question, 9) == 1
    assert not {grid_invariant(g) for g in train.answers} & {grid_invariant(g) for g in test.answers}
    # far from minimal: with 51 clues a random clue can almost always be dropped
    assert train.ratings.max() <= 1
    minimal, _ = generate_sudoku_split(9, n_train=25, n_test=0, seed=3)
    assert ((minimal.questions == 0).sum(axis=1) > 45).all()


def test_4x4_pool_has_all_288_grids():
    grids = all_grids(4)
    assert grids.shape == (288, 16)
    assert len({g.tobytes() for g in grids}) == 288
    assert all(solution_problem(g, 4) is None for g in grids)


def test_disjoint_from_for_small_sizes():
    train, _ = generate_sudoku_split(4, n_train=100, n_test=0, seed=4)
    extra = generate_sudoku_disjoint_from(train.answers, 4, count=30, seed=4)
    _assert_valid_set(extra, 4, 30, 0)
    assert not (_grid_keys(train) & _grid_keys(extra))
    with pytest.raises(ValueError, match="every 4x4 grid"):
        generate_sudoku_disjoint_from(all_grids(4), 4, count=1, seed=0)
    with pytest.raises(ValueError, match="training answer 1: row 1"):
        generate_sudoku_disjoint_from(np.array([all_grids(4)[0], [1] * 16]), 4, count=1, seed=0)


def test_same_seed_same_arrays_other_seed_other_arrays():
    first = generate_sudoku_split(6, n_train=20, n_test=10, seed=123, min_rating=1)
    again = generate_sudoku_split(6, n_train=20, n_test=10, seed=123, min_rating=1)
    other = generate_sudoku_split(6, n_train=20, n_test=10, seed=124, min_rating=1)
    for a, b in zip(first, again, strict=True):
        assert np.array_equal(a.questions, b.questions) and np.array_equal(a.answers, b.answers)
        assert np.array_equal(a.ratings, b.ratings)
    assert not np.array_equal(first[0].questions, other[0].questions)


def test_seeded_output_is_pinned():
    """Cross-machine determinism: a pure function of the seed (integer solver, PCG64). The digest was recorded
    on 2026-11-23 with numpy 2.4.6 / numba 0.68.1."""
    train, test = generate_sudoku_split(9, n_train=2, n_test=1, seed=0, min_rating=10)
    arrays = (train.questions, train.answers, test.questions, test.answers)
    assert hashlib.sha256(b"".join(a.tobytes() for a in arrays)).hexdigest() == PINNED_9X9_DIGEST


def test_impossible_requests_fail_clearly(monkeypatch):
    import trm.data.sudoku_gen as sudoku_gen

    monkeypatch.setattr(sudoku_gen, "MAX_ATTEMPTS_WITHOUT_PROGRESS", 300)
    with pytest.raises(ValueError, match="found only 0 of 1 distinct 4x4 puzzles with rating >= 1"):
        generate_sudoku_split(4, 1, 0, seed=0, min_rating=1)  # naked singles solve every minimal 4x4 puzzle
    with pytest.raises(ValueError, match="unsupported Sudoku size 5"):
        generate_sudoku_split(5, 1, 1, seed=0)
    with pytest.raises(ValueError, match="non-negative"):
        generate_sudoku_split(9, -1, 1, seed=0)


PINNED_9X9_DIGEST = "faba60f3b08ce5bed4542f25d31849fbe935007ef353b07aff3ab920f6f0880f"
