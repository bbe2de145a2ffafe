"""Layer-level facts: SwiGLU width rule, parameter-free fp32 RMSNorm, RoPE, token-mixing block shapes."""

from __future__ import annotations

import pytest
import torch

from trm.model.layers import Attention, Block, RotaryEmbedding, apply_rotary, rms_norm, swiglu_inner_width


@pytest.mark.parametrize(
    ("hidden", "expansion", "width"), [(512, 4.0, 1536), (97, 4.0, 512), (64, 4.0, 256), (916, 4.0, 2560)]
)
def test_swiglu_width_rule(hidden: int, expansion: float, width: int) -> None:
    assert swiglu_inner_width(hidden, expansion) == width


def test_rms_norm_is_parameter_free_and_fp32_inside() -> None:
    x = torch.randn(3, 5, 16) * 7
    y = rms_norm(x, 1e-5)
    assert torch.allclose(y.square().mean(-1), torch.ones(3, 5), atol=1e-4)
    expected = (x.double() / torch.sqrt(x.double().square().mean(-1, keepdim=True) + 1e-5)).float()
    assert torch.allclose(y, expected, atol=1e-6)
    half = rms_norm(x.to(torch.bfloat16), 1e-5)
    assert half.dtype == torch.bfloat16
    assert torch.equal(half, rms_norm(x.to(torch.bfloat16).float(), 1e-5).to(torch.bfloat16))


def test_rope_keeps_norms_and_depends_only_on_relative_position() -> None:
    rope = RotaryEmbedding(head_dim=8, max_positions=10, theta=10000.0)
    cos, sin = rope()
    assert cos.shape == (10, 8)
    q = torch.randn(1, 1, 1, 8).expand(1, 10, 1, 8).contiguous()
    k = torch.randn(1, 1, 1, 8).expand(1, 10, 1, 8).contiguous()
    q_rot, k_rot = apply_rotary(q, k, cos, sin)
    assert torch.allclose(q_rot.norm(dim=-1), q.norm(dim=-1), atol=1e-5)
    scores = q_rot[0, :, 0] @ k_rot[0, :, 0].T
    assert torch.allclose(scores[2, 5], scores[4, 7], atol=1e-5)  # same offset, same score
    assert torch.allclose(q_rot[0, 0], q[0, 0])  # position 0 is not rotated


def test_attention_is_non_causal_and_shaped() -> None:
    torch.manual_seed(0)
    attention = Attention(hidden_size=32, num_heads=4)
    x = torch.randn(2, 6, 32)
    out = attention(x, None)
    assert out.shape == (2, 6, 32)
    changed = x.clone()
    changed[:, -1] += 1.0
    assert not torch.allclose(attention(changed, None)[:, 0], out[:, 0])  # the first token sees the last


def test_token_mixing_block_shapes_and_sequence_axis_norm() -> None:
    torch.manual_seed(0)
    block = Block(hidden_size=32, num_heads=4, expansion=4.0, eps=1e-5, token_mixing_length=13)
    assert block.mlp_t.gate_up_proj.weight.shape == (2 * 256, 13)
    x = torch.randn(3, 13, 32)
    assert block(x, None).shape == (3, 13, 32)
    # The token-mixing half alone is RMS-normalised over the sequence axis.
    h = x.transpose(1, 2)
    mixed = rms_norm(h + block.mlp_t(h), 1e-5)
    assert torch.allclose(mixed.square().mean(-1), torch.ones(3, 32), atol=1e-4)
    with pytest.raises(ValueError):
        Attention(hidden_size=30, num_heads=4)
