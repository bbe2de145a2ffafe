"""The TRM network and its ACT carry (contract 3 in docs/architecture.md). Imports only torch and pydantic."""

from trm.config import ModelConfig
from trm.model.puzzle_embedding import PuzzleEmbedding, SparseGradients
from trm.model.trm import (
    TRM,
    InnerCarry,
    RecursionDepth,
    TRMCarry,
    TRMInner,
    count_trainable_parameters,
    resolve_puzzle_emb_len,
)

__all__ = [
    "TRM",
    "InnerCarry",
    "ModelConfig",
    "PuzzleEmbedding",
    "RecursionDepth",
    "SparseGradients",
    "TRMCarry",
    "TRMInner",
    "count_trainable_parameters",
    "resolve_puzzle_emb_len",
]
