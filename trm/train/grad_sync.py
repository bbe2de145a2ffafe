"""Cross-rank exchange of one optimizer step's gradients and metric sums, in as few collectives as possible.

Why: over gloo on CPU every collective has a fixed cost (measured on 2 cores: an all_reduce of 1,000 floats takes
as long as one of 30,000, ~1.7 ms, and an all_gather of 30,000 floats ~0.7 ms), and every collective is a point
where the faster rank waits. With a small model those fixed costs, not bandwidth, limited 2-worker scaling. So
when the payload is small, each rank packs its dense gradients, its puzzle-table rows and its metric sums into one
float32 buffer and a single all_gather moves all of it; every rank then sums the dense parts in rank order, so all
replicas do identical arithmetic and stay bit-identical. Ids and float64 metric sums travel bit-for-bit (their
bytes are reinterpreted as float32, never converted). Large payloads (paper models on many GPUs) instead
all_reduce the dense gradients, whose traffic does not grow with the world size, and all_gather only the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist

# Above this many gathered bytes (world size x one rank's payload), dense gradients go through all_reduce.
FUSED_GATHER_MAX_BYTES = 64 * 2**20


@dataclass
class ExchangedStep:
    """What every rank holds after the exchange (dense gradients are summed in place in ``param.grad``)."""

    sparse_ids: torch.Tensor  # [world * N] int64, rank order
    sparse_grads: torch.Tensor  # [world * N, D] float32
    metric_sums: torch.Tensor  # [K] float64, summed over ranks


def _as_float32_bits(tensor: torch.Tensor) -> torch.Tensor:
    """Reinterpret a 4- or 8-byte tensor's bytes as float32 words (no rounding), flattened."""
    return tensor.contiguous().reshape(-1).view(torch.float32)


def _all_gather_rows(local: torch.Tensor, world: int, process_group: dist.ProcessGroup | None) -> torch.Tensor:
    """[world, n]: row r is rank r's 1-D ``local`` (gloo wants a flat output buffer)."""
    out = torch.empty(world * local.numel(), dtype=local.dtype, device=local.device)
    dist.all_gather_into_tensor(out, local, group=process_group)
    return out.view(world, local.numel())


def exchange_step(
    dense_params: list[torch.nn.Parameter],
    sparse_ids: torch.Tensor,
    sparse_grads: torch.Tensor,
    metric_sums: torch.Tensor,
    process_group: dist.ProcessGroup | None,
) -> ExchangedStep:
    """Sum dense gradients and metric sums over ranks; gather the puzzle-table rows of all ranks.

    Every rank must pass the same number of sparse rows (the sampler gives each rank b / world rows) and the same
    metric keys in the same order. Identity without a process group or with one rank.
    """
    world = 1 if process_group is None else dist.get_world_size(process_group)
    if world == 1:
        return ExchangedStep(sparse_ids, sparse_grads, metric_sums)

    device = metric_sums.device
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in dense_params]
    dense_count = sum(g.numel() for g in grads)
    ids32 = sparse_ids.to(device=device, dtype=torch.int32)
    rest = [
        _as_float32_bits(ids32),
        sparse_grads.to(device=device, dtype=torch.float32).reshape(-1),
        _as_float32_bits(metric_sums.to(device=device, dtype=torch.float64)),
    ]
    rest_count = sum(r.numel() for r in rest)
    fused = world * (dense_count + rest_count) * 4 <= FUSED_GATHER_MAX_BYTES

    dense_parts = [g.reshape(-1).to(device=device, dtype=torch.float32) for g in grads]
    if fused:
        local = torch.cat(dense_parts + rest)
        gathered = _all_gather_rows(local, world, process_group)
        dense_sum = gathered[0, :dense_count].clone()
        for rank in range(1, world):  # fixed rank order: identical sums on every rank
            dense_sum += gathered[rank, :dense_count]
        rest_rows = gathered[:, dense_count:]
    else:
        dense_sum = torch.cat(dense_parts)
        dist.all_reduce(dense_sum, group=process_group)
        local = torch.cat(rest)
        rest_rows = _all_gather_rows(local, world, process_group)

    offset = 0
    for param, grad in zip(dense_params, grads, strict=True):
        count = grad.numel()
        param.grad = dense_sum[offset : offset + count].view_as(grad).to(grad.dtype).clone()
        offset += count

    n_ids, n_grad = ids32.numel(), sparse_grads.numel()
    width = sparse_grads.shape[1] if sparse_grads.ndim == 2 else 0
    all_ids = rest_rows[:, :n_ids].contiguous().view(torch.int32).reshape(-1).to(torch.int64)
    all_grads = rest_rows[:, n_ids : n_ids + n_grad].reshape(world * sparse_grads.shape[0], width)
    metric_bits = rest_rows[:, n_ids + n_grad :].contiguous().view(torch.float64)
    metrics = metric_bits[0].clone()
    for rank in range(1, world):
        metrics += metric_bits[rank]
    return ExchangedStep(all_ids.to(sparse_ids.device), all_grads.to(sparse_grads.device), metrics)
