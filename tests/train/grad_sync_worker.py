"""Run as a script: one rank of a 2-process gloo group calls ``exchange_step`` on rank-dependent inputs, with the
fused all_gather path and with the all_reduce path, and saves what it received (used by test_distributed.py)."""

from __future__ import annotations

import sys
from datetime import timedelta

import torch
import torch.distributed as dist
from safetensors.torch import save_file

import trm.train.grad_sync as grad_sync


def rank_inputs(rank: int) -> tuple[list[torch.nn.Parameter], torch.Tensor, torch.Tensor, torch.Tensor]:
    """Deterministic per-rank inputs: two parameters (one without a gradient), 3 sparse rows, 2 metric sums."""
    weight = torch.nn.Parameter(torch.zeros(2, 3))
    weight.grad = torch.arange(6, dtype=torch.float32).view(2, 3) * (rank + 1)
    bias = torch.nn.Parameter(torch.zeros(4))  # no .grad: counts as zeros
    ids = torch.tensor([7, 2**24 + 3, 5], dtype=torch.int64) + rank  # above float32's exact integer range
    grads = torch.full((3, 2), float(rank)) + torch.arange(3.0).view(3, 1)
    metrics = torch.tensor([1.0 + 1e-12 * (rank + 1), 10.0 * rank], dtype=torch.float64)  # needs float64 bits
    return [weight, bias], ids, grads, metrics


def main() -> None:
    rank, init_file, out_file = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=2, timeout=timedelta(seconds=60)
    )
    try:
        saved: dict[str, torch.Tensor] = {}
        for path, limit in (("fused", grad_sync.FUSED_GATHER_MAX_BYTES), ("all_reduce", 0)):
            grad_sync.FUSED_GATHER_MAX_BYTES = limit
            params, ids, grads, metrics = rank_inputs(rank)
            out = grad_sync.exchange_step(params, ids, grads, metrics, dist.group.WORLD)
            saved.update(
                {
                    f"{path}.weight_grad": params[0].grad,
                    f"{path}.bias_grad": params[1].grad,
                    f"{path}.ids": out.sparse_ids,
                    f"{path}.grads": out.sparse_grads,
                    f"{path}.metrics": out.metric_sums,
                }
            )
        save_file({k: v.contiguous() for k, v in saved.items()}, out_file)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
