"""Matmul FLOP counts of one supervision step, for throughput benchmarks (achieved FLOP/s vs the GEMM peak).

Why count by hand: the recursion calls one small network T·(n+1) times per step and only the last n+1 calls are
differentiated (the last 2 with ``one_step_gradient``), so "6 × params × tokens" rules of thumb are far off.
Convention: a [m,k]×[k,n] product is 2·m·k·n FLOPs; only matrix products are counted (attention scores/values
included; norms, activations, RoPE excluded); a differentiated call costs 3× its forward (input gradient + weight
gradient), a no-grad call 1×.
"""

from __future__ import annotations

from dataclasses import dataclass

from trm.config import ModelConfig
from trm.model.layers import swiglu_inner_width
from trm.model.trm import resolve_puzzle_emb_len


@dataclass(frozen=True)
class StepFlops:
    """Per-sample FLOPs of one supervision step."""

    net_call: int  # one pass of the shared block stack
    heads: int  # lm_head over all positions + q head
    forward: int  # T·(n+1) net calls + heads
    training: int  # forward + backward of the differentiated process and heads

    def per_batch(self, batch_size: int, training: bool = True) -> int:
        return batch_size * (self.training if training else self.forward)


def supervision_step_flops(config: ModelConfig) -> StepFlops:
    """FLOPs per sample of one supervision step of `config` (see the module docstring for the convention)."""
    hidden = config.hidden_size
    tokens = config.seq_len + resolve_puzzle_emb_len(config)
    channel_width = swiglu_inner_width(hidden, config.expansion)
    channel_mlp = tokens * (2 * hidden * 2 * channel_width + 2 * channel_width * hidden)
    if config.mlp_t:
        token_width = swiglu_inner_width(tokens, config.expansion)
        mixer = hidden * (2 * tokens * 2 * token_width + 2 * token_width * tokens)
    else:
        projections = tokens * (2 * hidden * 3 * hidden + 2 * hidden * hidden)
        attention = 2 * (2 * tokens * tokens * hidden)  # scores and weighted values, all heads together
        mixer = projections + attention
    net_call = config.L_layers * (mixer + channel_mlp)
    heads = 2 * tokens * hidden * config.vocab_size + 2 * hidden * 2
    calls = config.H_cycles * (config.L_cycles + 1)
    differentiated = 2 if config.one_step_gradient else config.L_cycles + 1  # the last z and y updates only
    forward = calls * net_call + heads
    training = forward + 2 * (differentiated * net_call + heads)
    return StepFlops(net_call=net_call, heads=heads, forward=forward, training=training)
