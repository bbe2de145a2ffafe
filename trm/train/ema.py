"""Exponential moving average of the trainable parameters (docs/reference.md §2.7), used for evaluation and export.

Buffers (puzzle table, H_init/L_init) are not averaged: the EMA model takes them from the live model.
"""

from __future__ import annotations

import torch
from torch import nn


class EMA:
    def __init__(self, model: nn.Module, rate: float = 0.999) -> None:
        self.rate = float(rate)
        self.shadow: dict[str, torch.Tensor] = {
            name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad
        }

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """shadow = rate * shadow + (1 - rate) * param, once after every optimizer step."""
        for name, param in model.named_parameters():
            if name in self.shadow:
                self.shadow[name].mul_(self.rate).add_(param.detach(), alpha=1.0 - self.rate)

    @torch.no_grad()
    def copy_to(self, target: nn.Module, source: nn.Module | None = None) -> nn.Module:
        """Load EMA weights into ``target``; buffers are copied from ``source`` (the live model) when given."""
        if source is not None:
            target.load_state_dict(source.state_dict())
        params = dict(target.named_parameters())
        for name, value in self.shadow.items():
            params[name].copy_(value)
        return target

    def state_tensors(self, prefix: str = "ema.") -> dict[str, torch.Tensor]:
        return {prefix + name: t for name, t in self.shadow.items()}

    @torch.no_grad()
    def load_state_tensors(self, tensors: dict[str, torch.Tensor], prefix: str = "ema.") -> None:
        for name, value in self.shadow.items():
            key = prefix + name
            if key not in tensors:
                raise KeyError(f"EMA state: missing tensor {key!r}")
            value.copy_(tensors[key])
