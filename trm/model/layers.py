"""Building blocks of the TRM network: casted linear/embedding layers, RoPE, attention, SwiGLU and the post-norm
block (docs/reference.md §1.3-§1.6).

Parameter names are the official module names, so an official state dict loads after a prefix rename. Weights
live in fp32 and are cast to the activation dtype on every call; RMSNorm and RoPE compute in fp32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trm.model.init import trunc_normal_

CosSin = tuple[torch.Tensor, torch.Tensor]


def round_up_to_multiple(value: int, multiple: int) -> int:
    """Smallest multiple of `multiple` that is >= value (SwiGLU width rule)."""
    return -(value // -multiple) * multiple


def swiglu_inner_width(hidden_size: int, expansion: float) -> int:
    """Hidden width of a SwiGLU: round(expansion·D·2/3) rounded up to 256 (1536 for D=512, expansion 4)."""
    return round_up_to_multiple(round(expansion * hidden_size * 2 / 3), 256)


def rms_norm(hidden_states: torch.Tensor, eps: float) -> torch.Tensor:
    """Parameter-free RMSNorm over the last axis, computed in fp32 and cast back (post-norm blocks rely on it)."""
    input_dtype = hidden_states.dtype
    x = hidden_states.to(torch.float32)
    x = x * torch.rsqrt(x.square().mean(-1, keepdim=True) + eps)
    return x.to(input_dtype)


class CastedLinear(nn.Module):
    """Linear layer with fp32 master weights cast to the input dtype per call; LeCun truncated-normal init."""

    def __init__(self, in_features: int, out_features: int, bias: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(trunc_normal_(torch.empty(out_features, in_features), std=in_features**-0.5))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias.to(x.dtype) if self.bias is not None else None
        return F.linear(x, self.weight.to(x.dtype), bias)


class CastedEmbedding(nn.Module):
    """Embedding table in fp32, looked up then cast to the forward dtype."""

    def __init__(self, num_embeddings: int, embedding_dim: int, init_std: float, cast_to: torch.dtype) -> None:
        super().__init__()
        self.cast_to = cast_to
        self.embedding_weight = nn.Parameter(trunc_normal_(torch.empty(num_embeddings, embedding_dim), std=init_std))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.embedding_weight.to(self.cast_to))


class RotaryEmbedding(nn.Module):
    """RoPE tables (rotate-half convention, fp32) for positions 0..max_positions-1; not saved in state dicts."""

    cos_cached: torch.Tensor
    sin_cached: torch.Tensor

    def __init__(self, head_dim: int, max_positions: int, theta: float) -> None:
        super().__init__()
        inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        freqs = torch.outer(torch.arange(max_positions, dtype=torch.float32), inv_freq)
        angles = torch.cat((freqs, freqs), dim=-1)
        self.register_buffer("cos_cached", angles.cos(), persistent=False)
        self.register_buffer("sin_cached", angles.sin(), persistent=False)

    def forward(self) -> CosSin:
        return self.cos_cached, self.sin_cached


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


def apply_rotary(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Rotate q, k ([B, S, H, Dh]) in fp32 with tables [S, Dh]; results in the input dtype."""
    dtype = q.dtype
    q, k = q.to(cos.dtype), k.to(cos.dtype)
    cos, sin = cos.unsqueeze(-2), sin.unsqueeze(-2)
    q_rot = q * cos + _rotate_half(q) * sin
    k_rot = k * cos + _rotate_half(k) * sin
    return q_rot.to(dtype), k_rot.to(dtype)


class Attention(nn.Module):
    """Non-causal multi-head self-attention with a fused qkv projection, no biases, no masking."""

    def __init__(self, hidden_size: int, num_heads: int) -> None:
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.qkv_proj = CastedLinear(hidden_size, 3 * hidden_size, bias=False)
        self.o_proj = CastedLinear(hidden_size, hidden_size, bias=False)

    def forward(self, hidden_states: torch.Tensor, cos_sin: CosSin | None) -> torch.Tensor:
        batch, seq, _ = hidden_states.shape
        qkv = self.qkv_proj(hidden_states).view(batch, seq, 3 * self.num_heads, self.head_dim)
        q, k, v = qkv.split(self.num_heads, dim=2)
        if cos_sin is not None:
            q, k = apply_rotary(q, k, *cos_sin)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=False)
        projected: torch.Tensor = self.o_proj(out.transpose(1, 2).reshape(batch, seq, self.num_heads * self.head_dim))
        return projected


class SwiGLU(nn.Module):
    """silu(gate)·up with a fused gate+up projection; width from `swiglu_inner_width`."""

    def __init__(self, hidden_size: int, expansion: float) -> None:
        super().__init__()
        inner = swiglu_inner_width(hidden_size, expansion)
        self.gate_up_proj = CastedLinear(hidden_size, 2 * inner, bias=False)
        self.down_proj = CastedLinear(inner, hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate_up: torch.Tensor = self.gate_up_proj(x)
        gate, up = gate_up.chunk(2, dim=-1)
        down: torch.Tensor = self.down_proj(F.silu(gate) * up)
        return down


class Block(nn.Module):
    """Post-norm block: h = norm(h + mixer(h)); h = norm(h + swiglu(h)).

    The mixer is attention, or (`mlp_t`) a SwiGLU across the sequence axis: the state is transposed to [B, D, S],
    mixed, added and RMS-normalised over the *sequence* axis, then transposed back.
    """

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        expansion: float,
        eps: float,
        token_mixing_length: int | None,
    ) -> None:
        super().__init__()
        self.eps = eps
        self.uses_token_mlp = token_mixing_length is not None
        if token_mixing_length is not None:
            self.mlp_t = SwiGLU(token_mixing_length, expansion)
        else:
            self.self_attn = Attention(hidden_size, num_heads)
        self.mlp = SwiGLU(hidden_size, expansion)

    def forward(self, hidden_states: torch.Tensor, cos_sin: CosSin | None) -> torch.Tensor:
        if self.uses_token_mlp:
            h = hidden_states.transpose(1, 2)
            h = rms_norm(h + self.mlp_t(h), self.eps)
            hidden_states = h.transpose(1, 2)
        else:
            hidden_states = rms_norm(hidden_states + self.self_attn(hidden_states, cos_sin), self.eps)
        return rms_norm(hidden_states + self.mlp(hidden_states), self.eps)


class ReasoningModule(nn.Module):
    """The one shared network: adds the injection to the state, then runs the block stack (`layers.i`)."""

    def __init__(self, blocks: list[Block]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(blocks)

    def forward(self, state: torch.Tensor, injection: torch.Tensor, cos_sin: CosSin | None) -> torch.Tensor:
        hidden_states = state + injection
        for block in self.layers:
            hidden_states = block(hidden_states, cos_sin)
        return hidden_states
