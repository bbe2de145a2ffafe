"""Sudoku rules, solution counting and the rating definition (checked against an independent reference)."""

from __future__ import annotations

import numpy as np
import pytest

from trm.data.sudoku_gen import dig_puzzle
from trm.data.sudoku_solver import (
    box_shape,
    clue_conflict,
    count_solutions,
    random_full_grid,
    rate,
    solution_problem,
    solve,
)


def _real_sudoku(shared_datasets) -> tuple[np.ndarray, np.ndarray]:
    folder = shared_datasets / "sudoku-extreme-1k" / "npy" / "train"
    # tokens 1 = blank, 2..10 = digits: shift to 0 = blank, 1..9 = digits
    questions = np.load(folder / "all__inputs.npy") - 1
    answers = np.load(folder / "all__labels.npy") - 1
    return questions.astype(np.uint8), answers.astype(np.uint8)


def _reference_rate(question: np.ndarray, size: int) -> int:
    """The documented rating, written independently as plain recursion: MRV (first cell in row-major order among
    those with the fewest candidates), naked singles placed without counting, every trial at a cell with ≥2
    candidates counted as one guess, candidates tried in ascending order, stop at the first solution."""
    br, bc = box_shape(size)

    def candidates(grid: list[int], cell: int) -> list[int]:
        r, c = divmod(cell, size)
        r0, c0 = r - r % br, c - c % bc
        used = {grid[r * size + k] for k in range(size)} | {grid[k * size + c] for k in range(size)}
        used |= {grid[(r0 + i) * size + c0 + j] for i in range(br) for j in range(bc)}
        return [d for d in range(1, size + 1) if d not in used]

    guesses = 0

    def search(grid: list[int]) -> bool:
        nonlocal guesses
        while True:
            empty = [i for i in range(size * size) if grid[i] == 0]
            if not empty:
                return True
            options = {i: candidates(grid, i) for i in empty}
            fewest = min(len(v) for v in options.values())
            cell = next(i for i in empty if len(options[i]) == fewest)
            if fewest == 0:
                return False
            if fewest == 1:
                grid[cell] = options[cell][0]
                continue
            for digit in options[cell]:
                guesses += 1
                trial = grid.copy()
                trial[cell] = digit
                if search(trial):
                    return True
            return False

    assert search([int(v) for v in question])
    return guesses


def test_real_sudoku_extreme_solutions_are_valid_unique_and_found(shared_datasets):
    questions, answers = _real_sudoku(shared_datasets)
    assert [solution_problem(a, 9) for a in answers] == [None] * 1000
    assert [clue_conflict(q, a) for q, a in zip(questions, answers, strict=True)] == [None] * 1000
    sample = range(0, 1000, 5)
    assert [count_solutions(questions[i], 9) for i in sample] == [1] * len(sample)
    assert all(np.array_equal(solve(questions[i], 9), answers[i]) for i in sample)


def test_rating_matches_the_independent_reference(shared_datasets):
    questions, _ = _real_sudoku(shared_datasets)
    rng = np.random.default_rng(11)
    # a few real puzzles that need backtracking but stay cheap for the slow reference (ratings 5..80)
    puzzles = [(q, 9) for q in questions[:200] if 5 <= rate(q, 9) <= 80][:5]
    assert len(puzzles) == 5
    for size in (4, 6, 9):
        for _ in range(6):
            puzzles.append((dig_puzzle(random_full_grid(size, rng), size, rng), size))
    for question, size in puzzles:
        assert rate(question, size) == _reference_rate(question, size)


def test_rating_of_hand_made_puzzles():
    # empty 4x4 grid, traced by hand: guesses r1c1=1, r1c2=2, r1c3=3 (r1c4=4 forced), r2c1=3 (r2c2=4 forced),
    # r2c3=1 (r2c4=2 forced), r3c1=2 (r3c3=4, r4c1=4, r4c3=2 forced), then a 2x2 of {1,3} needs one more: 7
    assert rate(np.zeros(16, np.uint8), 4) == 7
    # a full grid minus one digit is solved by a naked single: rating 0
    grid = np.array([1, 2, 3, 4, 3, 4, 1, 2, 2, 1, 4, 3, 4, 3, 2, 1], np.uint8)
    question = grid.copy()
    question[5] = 0
    assert rate(question, 4) == 0 and count_solutions(question, 4) == 1
    # two empty cells in a row of a 4x4 whose columns leave {1,2} each way: the deadly rectangle
    # r1: _ _ 3 4 / r2: 3 4 _ _ ... with r1c1/r1c2 and r3c1/r3c2 free has two solutions
    question = grid.copy()
    question[[0, 1, 8, 9]] = 0
    assert count_solutions(question, 4) == 2
    assert count_solutions(question, 4, limit=1) == 1
    assert rate(question, 4) == 1  # one decision, first candidate (1) already leads to a solution


def test_unsolvable_puzzles():
    question = np.zeros(81, np.uint8)
    question[0] = question[1] = 5  # clues break the row rule
    assert count_solutions(question, 9) == 0
    assert solve(question, 9) is None
    with pytest.raises(ValueError, match="no solution"):
        rate(question, 9)


def test_rule_violations_are_named():
    grid = np.array([1, 2, 3, 4, 3, 4, 1, 2, 2, 1, 4, 3, 4, 3, 2, 1], np.uint8)
    assert solution_problem(grid, 4) is None
    swapped = grid.copy()
    swapped[[0, 1]] = swapped[[1, 0]]  # rows stay fine, columns 1 and 2 break
    assert solution_problem(swapped, 4) == "column 1 contains digit 2 2 times"
    rows_and_columns_ok = np.array([1, 2, 3, 4, 2, 1, 4, 3, 3, 4, 1, 2, 4, 3, 2, 1], np.uint8)
    assert solution_problem(rows_and_columns_ok, 4) == "box 1 contains digit 1 2 times"
    assert "cell r1c3 holds 7" in solution_problem(np.array([1, 2, 7, 4] + [1] * 12, np.uint8), 4)
    assert "cell r1c1 holds 0" in solution_problem(np.zeros(16, np.uint8), 4)
    assert "expected 36" in solution_problem(np.ones(35, np.uint8), 6)
    assert "unsupported Sudoku size 5" in solution_problem(np.ones(25, np.uint8), 5)


def test_box_shapes_for_6x6_are_two_rows_by_three_columns():
    assert box_shape(6) == (2, 3)
    # valid 6x6: boxes of 2 rows x 3 cols
    grid = np.array(
        [
            [1, 2, 3, 4, 5, 6],
            [4, 5, 6, 1, 2, 3],
            [2, 3, 1, 5, 6, 4],
            [5, 6, 4, 2, 3, 1],
            [3, 1, 2, 6, 4, 5],
            [6, 4, 5, 3, 1, 2],
        ],
        np.uint8,
    ).reshape(-1)
    assert solution_problem(grid, 6) is None
    # the transposed grid keeps rows/columns valid but breaks 2x3 boxes
    transposed = grid.reshape(6, 6).T.reshape(-1)
    assert solution_problem(transposed, 6).startswith("box")


def test_clue_conflict_names_the_cell():
    answer = np.array([1, 2, 3, 4, 3, 4, 1, 2, 2, 1, 4, 3, 4, 3, 2, 1], np.uint8)
    question = np.zeros(16, np.uint8)
    question[6] = 3  # r2c3 holds 1 in the answer
    assert clue_conflict(question, answer) == "cell r2c3: clue 3 but answer 1"
    question[6] = 1
    assert clue_conflict(question, answer) is None


def test_random_full_grids_are_valid_and_seeded():
    for size in (4, 6, 9):
        first = random_full_grid(size, np.random.default_rng(7))
        again = random_full_grid(size, np.random.default_rng(7))
        assert solution_problem(first, size) is None
        assert np.array_equal(first, again)
    grids = {random_full_grid(9, np.random.default_rng(s)).tobytes() for s in range(20)}
    assert len(grids) == 20
