"""The training objective of docs/reference.md §2.3 and the per-step metrics of docs/reference.md §2.9.

Why float64 stable-max: the official loss casts logits to float64 and replaces exp with a piecewise-linear/
reciprocal map s(x); reproducing it exactly keeps loss values and gradients comparable with the official runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100
HALT_LOSS_WEIGHT = 0.5
_STABLEMAX_EPS = 1e-30  # the official s(x) adds this to 1 - x; irrelevant in float64 but kept for parity


def stablemax_transform(x: torch.Tensor) -> torch.Tensor:
    """s(x) = x + 1 for x >= 0, 1 / (1 - x) for x < 0: positive, monotone, grows linearly instead of exponentially."""
    return torch.where(x < 0, 1.0 / (1.0 - x + _STABLEMAX_EPS), x + 1.0)


def log_stablemax(logits: torch.Tensor, dim: int = -1) -> torch.Tensor:
    s = stablemax_transform(logits)
    return torch.log(s / s.sum(dim=dim, keepdim=True))


def stablemax_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """Per-token -log p_label under stable-max, in float64; 0 where the label is ignored. Shapes [..., V], [...]."""
    logprobs = log_stablemax(logits.to(torch.float64), dim=-1)
    valid = labels != ignore_index
    safe_labels = torch.where(valid, labels, torch.zeros_like(labels)).long()
    picked = torch.gather(logprobs, -1, safe_labels.unsqueeze(-1)).squeeze(-1)
    return -torch.where(valid, picked, torch.zeros_like(picked))


@dataclass
class LossOutput:
    loss: torch.Tensor  # (lm + 0.5 * halt) / global_batch_size: what is back-propagated
    metrics: dict[str, torch.Tensor]  # SUMS over this rank's rows; reduce across ranks, then finalize_metrics


def act_loss(
    logits: torch.Tensor,
    q_halt_logits: torch.Tensor,
    labels: torch.Tensor,
    halted: torch.Tensor,
    steps: torch.Tensor,
    global_batch_size: int,
    q_continue_logits: torch.Tensor | None = None,
    q_continue_target: torch.Tensor | None = None,
) -> LossOutput:
    """Loss over ALL rows of the carry (docs/reference.md §2.3); metrics over rows that halted this step
    (docs/reference.md §2.9).

    ``labels`` must be the carry's current labels (rows keep their example across steps), ``halted``/``steps`` the
    carry state after this supervision step.
    """
    valid_tokens = labels != IGNORE_INDEX
    token_counts = valid_tokens.sum(-1)
    divisor = token_counts.clamp_min(1)

    with torch.no_grad():
        correct_tokens = valid_tokens & (logits.argmax(-1) == labels)
        row_exact = correct_tokens.sum(-1) == token_counts

    lm_loss = (stablemax_cross_entropy(logits, labels) / divisor.unsqueeze(-1)).sum()
    q_halt_loss = F.binary_cross_entropy_with_logits(q_halt_logits, row_exact.to(q_halt_logits.dtype), reduction="sum")
    total = lm_loss + HALT_LOSS_WEIGHT * q_halt_loss
    q_continue_loss = None
    if q_continue_target is not None and q_continue_logits is not None:  # HRM-style ACT (no_ACT_continue=False)
        q_continue_loss = F.binary_cross_entropy_with_logits(q_continue_logits, q_continue_target, reduction="sum")
        total = lm_loss + HALT_LOSS_WEIGHT * (q_halt_loss + q_continue_loss)

    with torch.no_grad():
        counted = halted & (token_counts > 0)
        zero = torch.zeros((), dtype=torch.float64, device=logits.device)
        metrics = {
            "count": counted.sum().to(torch.float64),
            "accuracy": torch.where(counted, correct_tokens.sum(-1).double() / divisor.double(), zero).sum(),
            "exact_accuracy": (counted & row_exact).sum().to(torch.float64),
            "q_halt_accuracy": (counted & ((q_halt_logits >= 0) == row_exact)).sum().to(torch.float64),
            "steps": torch.where(counted, steps.double(), zero).sum(),
            "lm_loss": lm_loss.detach().double(),
            "q_halt_loss": q_halt_loss.detach().double(),
        }
        if q_continue_loss is not None:
            metrics["q_continue_loss"] = q_continue_loss.detach().double()
    return LossOutput(loss=total / global_batch_size, metrics=metrics)


def finalize_metrics(sums: dict[str, float], global_batch_size: int) -> dict[str, float]:
    """Official normalisation: losses divided by the global batch, the rest averaged over halted rows."""
    count = max(float(sums.get("count", 0.0)), 1.0)
    result: dict[str, float] = {}
    for key, value in sums.items():
        if key == "count":
            result[key] = float(value)
        elif key.endswith("loss"):
            result[key] = float(value) / global_batch_size
        else:
            result[key] = float(value) / count
    return result
