"""Stable-max cross-entropy and the ACT loss vs hand computations; LR schedule; EMA."""

from __future__ import annotations

import math

import pytest
import torch

from trm.train.ema import EMA
from trm.train.loss import act_loss, finalize_metrics, stablemax_cross_entropy
from trm.train.schedule import learning_rate


def test_stablemax_matches_hand_computation():
    # s(2) = 3, s(-1) = 1/2, s(0) = 1 -> p = [3, .5, 1] / 4.5
    logits = torch.tensor([[2.0, -1.0, 0.0], [2.0, -1.0, 0.0]])
    labels = torch.tensor([0, 1])
    loss = stablemax_cross_entropy(logits, labels)
    assert loss.dtype == torch.float64
    assert loss[0].item() == pytest.approx(math.log(1.5), rel=1e-12)
    assert loss[1].item() == pytest.approx(math.log(9.0), rel=1e-12)


def test_stablemax_ignores_minus_100():
    loss = stablemax_cross_entropy(torch.randn(2, 4, 5), torch.tensor([[1, -100, 2, -100], [-100] * 4]))
    assert loss[0, 1] == 0 and loss[0, 3] == 0 and torch.all(loss[1] == 0)
    assert loss[0, 0] > 0


def test_act_loss_is_per_row_mean_summed_plus_half_bce_over_global_batch():
    logits = torch.tensor(
        [
            [[2.0, -1.0, 0.0], [0.0, 1.0, -2.0]],  # row 0 predicts [0, 1]; labels [0, 1] -> exact
            [[2.0, -1.0, 0.0], [0.0, 1.0, -2.0]],  # row 1 labels [2, ignored] -> wrong
        ]
    )
    labels = torch.tensor([[0, 1], [2, -100]])
    q_halt = torch.tensor([1.0, -2.0])
    halted = torch.tensor([True, False])
    steps = torch.tensor([3, 1])
    out = act_loss(logits, q_halt, labels, halted, steps, global_batch_size=4)
    # row 0: CE tokens log(1.5) and -log(s(1)/(1+2+1/3)) = log(10/3 / 2); mean over 2 tokens
    row0 = (math.log(1.5) + math.log((1 + 2 + 1 / 3) / 2)) / 2
    row1 = math.log(4.5 / 1.0)  # label 2: s(0) = 1
    bce = math.log1p(math.exp(-1.0)) + math.log1p(math.exp(-2.0))  # targets: row0 exact (1), row1 not (0)
    assert out.loss.item() == pytest.approx((row0 + row1 + 0.5 * bce) / 4, rel=1e-6)
    m = out.metrics
    assert m["count"].item() == 1  # only the halted row counts for accuracy metrics
    assert m["exact_accuracy"].item() == 1 and m["accuracy"].item() == 1 and m["steps"].item() == 3
    assert m["q_halt_accuracy"].item() == 1
    final = finalize_metrics({k: v.item() for k, v in m.items()}, 4)
    assert final["lm_loss"] == pytest.approx((row0 + row1) / 4, rel=1e-6)


def test_act_loss_backward_reaches_logits():
    logits = torch.randn(3, 4, 5, requires_grad=True)
    q = torch.zeros(3, requires_grad=True)
    out = act_loss(logits, q, torch.randint(0, 5, (3, 4)), torch.ones(3, dtype=torch.bool), torch.ones(3), 3)
    out.loss.backward()
    assert logits.grad is not None and q.grad is not None and torch.isfinite(logits.grad).all()


def test_schedule_warmup_then_constant_and_cosine():
    assert learning_rate(0, 1e-3, 10, 100) == 0.0
    assert learning_rate(5, 1e-3, 10, 100) == pytest.approx(5e-4)
    assert learning_rate(10, 1e-3, 10, 100) == pytest.approx(1e-3)
    assert learning_rate(90, 1e-3, 10, 100) == pytest.approx(1e-3)  # min_ratio 1.0 = constant
    assert learning_rate(10, 1e-3, 10, 110, min_ratio=0.1) == pytest.approx(1e-3)
    assert learning_rate(60, 1e-3, 10, 110, min_ratio=0.1) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5))
    assert learning_rate(110, 1e-3, 10, 110, min_ratio=0.1) == pytest.approx(1e-4)


def test_ema_update_and_copy():
    model = torch.nn.Linear(2, 1)
    model.register_buffer("table", torch.zeros(3))
    with torch.no_grad():
        model.weight.fill_(1.0)
        model.bias.fill_(0.0)
    ema = EMA(model, rate=0.9)
    with torch.no_grad():
        model.weight.fill_(2.0)
        model.table.fill_(5.0)
    ema.update(model)
    assert torch.allclose(ema.shadow["weight"], torch.full((1, 2), 1.1))
    target = torch.nn.Linear(2, 1)
    target.register_buffer("table", torch.zeros(3))
    ema.copy_to(target, source=model)
    assert torch.allclose(target.weight, torch.full((1, 2), 1.1))
    assert torch.equal(target.table, torch.full((3,), 5.0))  # buffers come from the live model, not averaged
    assert torch.equal(model.weight, torch.full((1, 2), 2.0))  # live model untouched
