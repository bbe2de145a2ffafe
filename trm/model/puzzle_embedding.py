"""Per-puzzle-identifier embedding table, trained sparsely by SignSGD (spec §1.3 item 2, §2.4).

Why a buffer and not a parameter: the table can hold ~1M rows × 512 (ARC, ~2 GB), but a batch touches at most B
rows. A dense optimizer would keep Adam moments for every row and decay untouched rows. So the table `weights`
is a persistent buffer (the official name, so official checkpoints load unchanged), it is excluded from the
parameter count and from the dense optimizer, and gradients flow into a small per-forward *leaf* tensor instead.

Interface with the SignSGD optimizer (H5, `trm/train/optim.py`) -- the contract:

* Training forward (module in train mode AND grad enabled): the rows `weights[ids]` are copied into a fresh leaf
  tensor `[B, ndim]` fp32 with `requires_grad=True`; the forward output is that leaf (cast to the forward dtype).
  The pair `(ids, leaf)` is appended to a pending list, so gradient accumulation over several micro-batches works.
  `local_ids` / `local_weights` expose the most recent pair (the official attribute names).
* Eval forward, or any forward under `torch.no_grad()`/`inference_mode()`: a plain lookup, nothing is recorded.
* After backward, the optimizer calls `take_sparse_gradients()` -> `SparseGradients(ids [N] int64, grads [N, ndim]
  fp32)`, the concatenation over all pending forwards (a leaf that received no gradient contributes zeros), and the
  pending list is cleared. The ids may repeat; the optimizer sums rows per unique id (after all-gathering ids and
  grads across ranks when distributed; every rank has the same N when local batches are equal), then updates only
  those rows in place: `w = w·(1 - lr·wd) - lr·sign(g)` written back into `puzzle_emb.weights`.
* `discard_pending()` drops recorded leaves without using them (e.g. after a skipped step).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from trm.model.init import trunc_normal_


@dataclass(frozen=True)
class SparseGradients:
    """Gradient rows of the puzzle table gathered since the last optimizer step; `ids` may contain duplicates."""

    ids: torch.Tensor  # int64 [N]
    grads: torch.Tensor  # float32 [N, ndim]


class PuzzleEmbedding(nn.Module):
    """Sparse embedding table `weights [num_ids, ndim]` (buffer) with per-forward gradient leaves."""

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

    @torch.compiler.disable
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
