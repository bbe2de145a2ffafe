"""The rehearsal's arithmetic: evaluation bounds sized to the budget, and the GPU projection of docs/scaling.md."""

from __future__ import annotations

import pytest

from pipelines.rehearsal import RehearsalBudget, evaluation_bounds, gpu_projection


def test_bounds_fit_the_budget_and_arc_keeps_variants_to_vote_over() -> None:
    budget = RehearsalBudget(eval_gflop=12_000)
    sudoku = evaluation_bounds(model_flops_forward=14 * 10**9, halt_max_steps=16, arc=False, budget=budget)
    assert sudoku == {"max_groups": 53, "max_variants": 1}  # 12 TFLOP / (14 GFLOP x 16 steps)
    arc = evaluation_bounds(model_flops_forward=130 * 10**9, halt_max_steps=16, arc=True, budget=budget)
    assert arc == {"max_groups": 2, "max_variants": 2}  # 5 examples fit; never fewer than 2 variants per task
    huge = evaluation_bounds(model_flops_forward=10**15, halt_max_steps=16, arc=False, budget=budget)
    assert huge == {"max_groups": 1, "max_variants": 1}


def test_projection_matches_the_scaling_doc_for_sudoku() -> None:
    # docs/scaling.md: sudoku-extreme-mlp = 42.7 GFLOP x 768 x 65,104 steps = 2.1 EFLOP -> 2.0 - 3.5 h on one H100
    flops = {"train_flop": 42.7e9 * 768 * 65_104, "eval_flop": 0.0}
    projection = gpu_projection(flops)
    assert projection["total_eflop"] == pytest.approx(2.13, abs=0.01)
    one, four = projection["hours"]["1xH100"], projection["hours"]["4xH100"]
    assert one == pytest.approx([2.0, 3.5], abs=0.05)
    assert four[0] == pytest.approx(one[0] / (4 * 0.9), rel=0.01)
