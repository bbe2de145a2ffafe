"""JAX-style truncated normal: the realised std equals the requested std (torch's trunc_normal_ does not)."""

from __future__ import annotations

import math

import pytest
import torch

from trm.model import TRM
from trm.model.init import trunc_normal_, truncated_normal_std_correction


def test_std_correction_constant() -> None:
    # Var of N(0,1) truncated to ±2: 1 - 2·2·φ(2)/(Φ(2)-Φ(-2)) = 0.7737..., std 0.8796
    phi2 = math.exp(-2.0) / math.sqrt(2 * math.pi)
    mass = math.erf(2 / math.sqrt(2))
    assert truncated_normal_std_correction() == pytest.approx(math.sqrt(1 - 4 * phi2 / mass), rel=1e-12)


@pytest.mark.parametrize("std", [1.0, 0.02, 1 / math.sqrt(512)])
def test_realised_std_matches_target(std: float) -> None:
    torch.manual_seed(0)
    values = trunc_normal_(torch.empty(1_000_000), std=std)
    assert values.std().item() == pytest.approx(std, rel=0.02)
    assert values.mean().item() == pytest.approx(0.0, abs=0.01 * std)
    bound = 2 * std / truncated_normal_std_correction()
    assert values.abs().max().item() <= bound * (1 + 1e-6)
    assert values.abs().max().item() > 0.95 * bound  # the tails really reach the truncation point


def test_torch_builtin_would_fail_the_same_check() -> None:
    """Guards the test itself: without the correction the std is ~12% low."""
    torch.manual_seed(0)
    values = torch.nn.init.trunc_normal_(torch.empty(1_000_000), std=1.0, a=-2.0, b=2.0)
    assert values.std().item() < 0.9


def test_zero_std_zero_fills() -> None:
    assert torch.count_nonzero(trunc_normal_(torch.ones(10), std=0.0)) == 0


def test_model_initialisation_statistics(tiny_config) -> None:
    torch.manual_seed(0)
    config = tiny_config(hidden_size=256, num_heads=4, vocab_size=600, seq_len=8, puzzle_emb_ndim=256, puzzle_emb_len=1)
    inner = TRM(config).inner
    for name, param in inner.named_parameters():
        if name.startswith("q_head"):
            continue
        fan_in = param.shape[1]
        target = 1 / math.sqrt(256) if "embedding_weight" in name else 1 / math.sqrt(fan_in)
        assert param.std().item() == pytest.approx(target, rel=0.05 if param.numel() < 100_000 else 0.02), name
    assert torch.count_nonzero(inner.q_head.weight) == 0
    assert torch.all(inner.q_head.bias == -5.0)
    assert torch.count_nonzero(inner.puzzle_emb.weights) == 0
    for buffer in (inner.H_init, inner.L_init):
        assert buffer.shape == (256,) and buffer.dtype == torch.float32
        assert 0.8 < buffer.std().item() < 1.2
    assert not torch.equal(inner.H_init, inner.L_init)
