"""Spec §4.1 metrics on constructed predictions: ignored tokens and padding rows never count."""

from __future__ import annotations

import torch

from trm.data.schema import IGNORE_INDEX
from trm.evaluate.metrics import MetricSums, StepCurve, batch_metric_sums, row_correctness, valid_rows


def _labels() -> torch.Tensor:
    return torch.tensor(
        [
            [2, 3, 4, 5],  # fully supervised
            [2, 3, IGNORE_INDEX, IGNORE_INDEX],  # half supervised
            [IGNORE_INDEX] * 4,  # padding row
            [5, 5, 5, 5],
        ]
    )


def test_row_correctness_ignores_unsupervised_positions() -> None:
    labels = _labels()
    predictions = torch.tensor([[2, 3, 4, 5], [2, 3, 9, 9], [1, 1, 1, 1], [5, 5, 5, 4]])
    token_accuracy, exact = row_correctness(predictions, labels)
    assert token_accuracy.tolist()[:2] == [1.0, 1.0]
    assert token_accuracy[3].item() == 0.75
    assert exact.tolist() == [True, True, True, False]  # row 2 is vacuous: excluded later by valid_rows


def test_padding_rows_are_excluded_from_every_metric() -> None:
    labels = _labels()
    predictions = torch.tensor([[2, 3, 4, 5], [2, 9, 0, 0], [0, 0, 0, 0], [5, 5, 5, 5]])
    q_halt = torch.tensor([1.0, 2.0, 5.0, -1.0])  # row 0 right (halt right), row 1 wrong (halt wrong), row 3 (wrong)
    example_index = torch.tensor([0, 1, -1, 2])
    valid = valid_rows(labels, example_index)
    assert valid.tolist() == [True, True, False, True]
    means = batch_metric_sums(predictions, labels, q_halt, 16, valid).means()
    assert means["count"] == 3
    assert abs(means["accuracy"] - (1.0 + 0.5 + 1.0) / 3) < 1e-12
    assert abs(means["exact_accuracy"] - 2 / 3) < 1e-12
    # row0: q>=0 & exact -> right; row1: q>=0 & not exact -> wrong; row3: q<0 & exact -> wrong
    assert abs(means["q_halt_accuracy"] - 1 / 3) < 1e-12
    assert means["steps"] == 16


def test_labels_only_padding_is_excluded_without_example_index() -> None:
    valid = valid_rows(_labels())
    assert valid.tolist() == [True, True, False, True]


def test_sums_combine_exactly_across_unequal_parts() -> None:
    """A mean of batch means would weight the small batch wrongly; sums do not."""
    labels = torch.tensor([[2, 3], [2, 3], [2, 3]])
    predictions = torch.tensor([[2, 3], [2, 3], [0, 0]])
    q = torch.zeros(3)
    whole = batch_metric_sums(predictions, labels, q, 1, torch.ones(3, dtype=torch.bool))
    a = batch_metric_sums(predictions[:2], labels[:2], q[:2], 1, torch.ones(2, dtype=torch.bool))
    b = batch_metric_sums(predictions[2:], labels[2:], q[2:], 1, torch.ones(1, dtype=torch.bool))
    assert MetricSums().add(a).add(b).means() == whole.means()
    assert abs(whole.means()["exact_accuracy"] - 2 / 3) < 1e-12
    assert MetricSums.from_tensor(whole.as_tensor()) == whole


def test_step_curve_lists_every_step_in_order() -> None:
    curve = StepCurve()
    labels = torch.tensor([[2, 3]])
    for step in range(1, 5):
        predictions = torch.tensor([[2, 3]]) if step >= 3 else torch.tensor([[2, 0]])
        curve.add(step, batch_metric_sums(predictions, labels, torch.zeros(1), step, torch.ones(1, dtype=torch.bool)))
    listed = curve.as_list()
    assert [p["step"] for p in listed] == [1, 2, 3, 4]
    assert [p["exact_accuracy"] for p in listed] == [0.0, 0.0, 1.0, 1.0]
    assert [p["accuracy"] for p in listed] == [0.5, 0.5, 1.0, 1.0]
