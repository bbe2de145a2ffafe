"""Optimizers of docs/reference.md §2.4 in pure PyTorch (no CUDA extension): AdamATan2 for dense weights and a
sparse SignSGD for the puzzle-embedding table.

Why not torch.optim.AdamW: the official runs use Adam-atan2 (eps replaced by atan2, a = b = 1), which behaves
differently for tiny second moments; results are only comparable with the same update rule.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch


class AdamATan2(torch.optim.Optimizer):
    """Per tensor, step t (1-based):
    p *= 1 - lr*wd;  m = lerp(m, g, 1-b1);  v = b2*v + (1-b2)*g^2;
    p -= lr / (1 - b1^t) * atan2(m, sqrt(v) / sqrt(1 - b2^t)).
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.95),
        weight_decay: float = 0.0,
    ) -> None:
        if lr < 0:
            raise ValueError(f"AdamATan2: lr must be >= 0, got {lr}")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"AdamATan2: betas must be in [0, 1), got {betas}")
        if weight_decay < 0:
            raise ValueError(f"AdamATan2: weight_decay must be >= 0, got {weight_decay}")
        super().__init__(params, {"lr": lr, "betas": betas, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, wd = float(group["lr"]), float(group["weight_decay"])
            beta1, beta2 = group["betas"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                grad = param.grad
                state = self.state[param]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float64)
                    state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                state["step"] += 1
                t = int(state["step"].item())
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]

                param.mul_(1.0 - lr * wd)
                exp_avg.lerp_(grad, 1.0 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
                step_size = lr / (1.0 - beta1**t)
                denom = exp_avg_sq.sqrt() / math.sqrt(1.0 - beta2**t)
                param.add_(torch.atan2(exp_avg, denom), alpha=-step_size)
        return loss


class SignSGD:
    """Sparse SignSGD with decoupled weight decay over a [num_ids, D] table that is a buffer, not a parameter.

    Only rows named in the step's ids change: gradients of repeated ids are summed per id, then
    w[id] *= 1 - lr*wd; w[id] -= lr * sign(sum of grads). Untouched rows get no decay. With several ranks, pass
    the rows of all ranks (the Trainer gathers them with its other gradients, trm/train/grad_sync.py), so repeated
    ids are summed across ranks too.
    """

    def __init__(self, table: torch.Tensor, lr: float, weight_decay: float) -> None:
        if table.ndim != 2:
            raise ValueError(f"SignSGD: table must be 2-D [num_ids, D], got shape {tuple(table.shape)}")
        self.table = table
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)

    @torch.no_grad()
    def step(self, ids: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        """Apply one update from (ids [N], grads [N, D]); returns the unique ids that were updated."""
        if ids.ndim != 1 or grads.ndim != 2 or grads.shape[0] != ids.shape[0]:
            raise ValueError(
                f"SignSGD.step: ids [N] and grads [N, D] expected, got {tuple(ids.shape)}, {tuple(grads.shape)}"
            )
        unique_ids, inverse = torch.unique(ids.long(), return_inverse=True)
        summed = torch.zeros((unique_ids.shape[0], grads.shape[1]), dtype=grads.dtype, device=grads.device)
        summed.index_add_(0, inverse, grads)
        rows = self.table[unique_ids]
        rows.mul_(1.0 - self.lr * self.weight_decay).add_(torch.sign(summed).to(rows.dtype), alpha=-self.lr)
        self.table[unique_ids] = rows
        ids_updated: torch.Tensor = unique_ids
        return ids_updated
