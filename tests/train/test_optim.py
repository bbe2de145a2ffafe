"""AdamATan2 against hand-computed steps (docs/reference.md §2.4) and SignSGD's sparsity."""

from __future__ import annotations

import math

import pytest
import torch

from trm.train.optim import AdamATan2, SignSGD


def _reference_adam_atan2(p: float, grads: list[float], lr: float, wd: float, b1: float, b2: float) -> list[float]:
    """The formula of docs/reference.md §2.4 in plain Python floats, one value per step."""
    m = v = 0.0
    out = []
    for t, g in enumerate(grads, start=1):
        p *= 1 - lr * wd
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p -= lr / (1 - b1**t) * math.atan2(m, math.sqrt(v) / math.sqrt(1 - b2**t))
        out.append(p)
    return out


def test_adam_atan2_first_step_literal():
    # step 1: decay 1 -> 0.999; m/(1-b1) = g, sqrt(v/(1-b2)) = |g| -> update lr/(1-b1) * atan2(0.1 g, |g|) = atan(0.1)
    p = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    opt = AdamATan2([p], lr=0.1, betas=(0.9, 0.95), weight_decay=0.01)
    p.grad = torch.tensor([0.5], dtype=torch.float64)
    opt.step()
    assert p.item() == pytest.approx(0.999 - math.atan(0.1), abs=1e-12)
    assert p.item() == pytest.approx(0.8993313475, abs=1e-9)


def test_adam_atan2_matches_formula_over_several_steps():
    grads = [0.5, -0.25, 1e-9, 3.0, -2.0, 0.0]
    expected = _reference_adam_atan2(0.7, grads, lr=0.05, wd=0.3, b1=0.9, b2=0.95)
    p = torch.nn.Parameter(torch.tensor([0.7], dtype=torch.float64))
    opt = AdamATan2([p], lr=0.05, betas=(0.9, 0.95), weight_decay=0.3)
    for g, want in zip(grads, expected, strict=True):
        p.grad = torch.tensor([g], dtype=torch.float64)
        opt.step()
        assert p.item() == pytest.approx(want, rel=1e-12, abs=1e-14)


def test_adam_atan2_tensor_elementwise_and_lr_change():
    torch.manual_seed(0)
    start = torch.randn(4, 3, dtype=torch.float64)
    grads = [torch.randn(4, 3, dtype=torch.float64) for _ in range(3)]
    lrs = [0.01, 0.02, 0.005]
    p = torch.nn.Parameter(start.clone())
    opt = AdamATan2([p], lr=lrs[0], betas=(0.8, 0.99), weight_decay=0.1)
    for g, lr in zip(grads, lrs, strict=True):
        opt.param_groups[0]["lr"] = lr
        p.grad = g.clone()
        opt.step()
    for i in range(4):
        for j in range(3):
            ref_p, m, v = start[i, j].item(), 0.0, 0.0
            for t, (g, lr) in enumerate(zip(grads, lrs, strict=True), start=1):
                gv = g[i, j].item()
                ref_p *= 1 - lr * 0.1
                m = 0.8 * m + 0.2 * gv
                v = 0.99 * v + 0.01 * gv * gv
                ref_p -= lr / (1 - 0.8**t) * math.atan2(m, math.sqrt(v) / math.sqrt(1 - 0.99**t))
            assert p[i, j].item() == pytest.approx(ref_p, rel=1e-12)


def test_signsgd_touches_and_decays_only_batch_rows():
    table = torch.full((6, 3), 2.0)
    before = table.clone()
    opt = SignSGD(table, lr=0.1, weight_decay=0.5)
    ids = torch.tensor([3, 1, 3], dtype=torch.int32)
    grads = torch.tensor([[1.0, -2.0, 0.5], [-1.0, 0.0, 3.0], [-3.0, 1.0, 0.25]])
    updated = opt.step(ids, grads)
    assert updated.tolist() == [1, 3]
    for row in (0, 2, 4, 5):
        assert torch.equal(table[row], before[row]), f"row {row} is not in the batch but changed"
    decayed = 2.0 * (1 - 0.1 * 0.5)
    # row 3: summed grads = [-2, -1, 0.75] -> signs [-1, -1, 1]; row 1: signs [-1, 0, 1]
    assert torch.allclose(table[3], torch.tensor([decayed + 0.1, decayed + 0.1, decayed - 0.1]))
    assert torch.allclose(table[1], torch.tensor([decayed + 0.1, decayed, decayed - 0.1]))


def test_signsgd_rejects_bad_shapes():
    opt = SignSGD(torch.zeros(3, 2), lr=0.1, weight_decay=0.0)
    with pytest.raises(ValueError, match="ids"):
        opt.step(torch.tensor([0, 1]), torch.zeros(3, 2))
