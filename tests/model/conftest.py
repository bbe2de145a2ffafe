"""Tiny model configs and batches for the model tests (CPU, fp32, one thread so timings stay stable)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from trm.model import ModelConfig

torch.set_num_threads(1)

TINY: dict[str, object] = {
    "seq_len": 12,
    "vocab_size": 7,
    "num_puzzle_identifiers": 5,
    "hidden_size": 32,
    "num_heads": 4,
    "L_layers": 2,
    "H_cycles": 2,
    "L_cycles": 3,
    "puzzle_emb_ndim": 32,
    "puzzle_emb_len": 4,
    "halt_max_steps": 4,
}


@pytest.fixture
def tiny_config() -> Callable[..., ModelConfig]:
    """Factory: a tiny ModelConfig with keyword overrides."""

    def make(**overrides: object) -> ModelConfig:
        return ModelConfig(**{**TINY, **overrides})

    return make


@pytest.fixture
def make_batch() -> Callable[..., dict[str, torch.Tensor]]:
    """Factory: a random batch following contract 2 for a config, from a seeded generator."""

    def make(config: ModelConfig, batch_size: int, seed: int = 0) -> dict[str, torch.Tensor]:
        gen = torch.Generator().manual_seed(seed)
        shape = (batch_size, config.seq_len)
        return {
            "inputs": torch.randint(0, config.vocab_size, shape, generator=gen, dtype=torch.int32),
            "labels": torch.randint(0, config.vocab_size, shape, generator=gen).to(torch.int64),
            "puzzle_identifiers": torch.randint(
                0, max(config.num_puzzle_identifiers, 1), (batch_size,), generator=gen, dtype=torch.int32
            ),
        }

    return make
