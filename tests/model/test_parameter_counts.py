"""Trainable parameter counts of the paper configurations equal the official code's (docs/reference.md §1.7)."""

from __future__ import annotations

import pytest
import torch

from trm.model import TRM, ModelConfig, count_trainable_parameters

PAPER_CONFIGS = {
    "sudoku-att": ({"vocab_size": 11, "seq_len": 81, "L_cycles": 6}, 6_828_034),
    "sudoku-mlp": (
        {"vocab_size": 11, "seq_len": 81, "L_cycles": 6, "mlp_t": True, "pos_encodings": "none"},
        5_028_866,
    ),
    "maze-att": ({"vocab_size": 6, "seq_len": 900}, 6_822_914),
    "arc-att": ({"vocab_size": 12, "seq_len": 900}, 6_829_058),
}


@pytest.mark.parametrize("name", sorted(PAPER_CONFIGS))
def test_paper_parameter_count(name: str) -> None:
    fields, expected = PAPER_CONFIGS[name]
    # A large puzzle table must not count: it is a buffer trained by SignSGD.
    with torch.device("meta"):
        model = TRM(ModelConfig(num_puzzle_identifiers=1000, **fields))
    assert count_trainable_parameters(model) == expected
    assert model.inner.puzzle_emb.weights.shape == (1000, 512)
    assert "inner.puzzle_emb.weights" in model.state_dict()


def test_block_parameter_breakdown() -> None:
    """Per block: attention 1,048,576 + SwiGLU 2,359,296; token-MLP block 2,508,288 (L+P = 97)."""
    with torch.device("meta"):
        att = TRM(ModelConfig(vocab_size=11, seq_len=81, num_puzzle_identifiers=1))
        mlp = TRM(ModelConfig(vocab_size=11, seq_len=81, num_puzzle_identifiers=1, mlp_t=True, pos_encodings="none"))
    block = att.inner.L_level.layers[0]
    assert count_trainable_parameters(block.self_attn) == 1_048_576
    assert count_trainable_parameters(block.mlp) == 2_359_296
    assert count_trainable_parameters(mlp.inner.L_level.layers[0]) == 2_508_288
    assert not hasattr(mlp.inner.L_level.layers[0], "self_attn")
    assert count_trainable_parameters(att.inner.q_head) == 1026


def test_l_layers_sets_the_blocks_of_the_shared_network() -> None:
    """The paper's "4 layers, n=3" ablation: two more attention blocks of 3,407,872 parameters each."""
    with torch.device("meta"):
        four = TRM(ModelConfig(vocab_size=11, seq_len=81, num_puzzle_identifiers=1, L_layers=4, L_cycles=3))
    assert len(four.inner.L_level.layers) == 4
    assert count_trainable_parameters(four) == 6_828_034 + 2 * 3_407_872
