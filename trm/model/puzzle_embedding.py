"""The per-puzzle-identifier embedding table (docs/reference.md §1.3 item 2), kept as a buffer and trained
sparsely by SignSGD (§2.4, `trm/train/optim.py`).

Training forwards copy the batch's rows into a fresh gradient leaf; after backward the optimizer collects them with
`take_sparse_gradients()`. The reasons and the full contract are in docs/architecture.md ("Design: the model").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from trm.model.eager import eager
from trm.model.init import trunc_normal_


@dataclass(frozen=True)
class SparseGradients:
    """Gradient rows of the puzzle table gathered since the last optimizer step; `ids` may contain duplicates."""

    ids: torch.Tensor  # int64 [N]
    grads: torch.Tensor  # float32 [N, ndim]


class PuzzleEmbedding(nn.Module):
    """Sparse embedding table `weights [num_ids, ndim]` (buffer) with per-forward gradient leaves."""

    weights: torch.Tensor

    def __init__(self, num_embeddings: int, embedding_dim: int, cast_to: torch.dtype, init_std: float = 0.0) -> None:
        super().__init__()
        self.cast_to = cast_to
        self.register_buffer(
            "weights", trunc_normal_(torch.empty(num_embeddings, embedding_dim), std=init_std), persistent=True
        )
        self._pending: list[tuple[torch.Tensor, torch.Tensor]] = []

    @property
    def local_ids(self) -> torch.Tensor | None:
        """Identifiers of the most recent training forward (None before the first one)."""
        return self._pending[-1][0] if self._pending else None

    @property
    def local_weights(self) -> torch.Tensor | None:
        """The gradient leaf of the most recent training forward."""
        return self._pending[-1][1] if self._pending else None

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.ndim > 1:
            ids = ids.squeeze(-1)
        ids = ids.to(torch.long)
        if not (self.training and torch.is_grad_enabled()):
            return self.weights[ids].to(self.cast_to)
        return self._record_leaf(ids).to(self.cast_to)

    @eager
    def _record_leaf(self, ids: torch.Tensor) -> torch.Tensor:
        """Copy the rows into a fresh gradient leaf and remember it (eager even under torch.compile: the leaf
        must be a real autograd leaf that outlives the compiled graph)."""
        leaf = self.weights[ids].detach().clone().requires_grad_(True)
        self._pending.append((ids.detach().clone(), leaf))
        return leaf

    def take_sparse_gradients(self) -> SparseGradients:
        """Concatenate (ids, grad rows) of every training forward since the last call, then forget them."""
        if not self._pending:
            empty_ids = torch.zeros(0, dtype=torch.long, device=self.weights.device)
            return SparseGradients(empty_ids, self.weights.new_zeros(0, self.weights.shape[1]))
        ids = torch.cat([i for i, _ in self._pending])
        grads = torch.cat([leaf.grad if leaf.grad is not None else torch.zeros_like(leaf) for _, leaf in self._pending])
        self._pending = []
        return SparseGradients(ids, grads.to(torch.float32))

    def discard_pending(self) -> None:
        """Forget recorded leaves without producing gradients."""
        self._pending = []
