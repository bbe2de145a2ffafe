"""JAX/Flax-style truncated-normal initialisation (docs/reference.md §1.5).

`torch.nn.init.trunc_normal_` cuts N(0, std) at ±2σ and so realises only ~0.88·std; the official code (like Flax)
widens the underlying normal so that the truncated draw has exactly the requested std. We sample by inverse CDF.
"""

from __future__ import annotations

import math

import torch

_SQRT2 = math.sqrt(2.0)


def _standard_normal_density(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def truncated_normal_std_correction(lower: float = -2.0, upper: float = 2.0) -> float:
    """Std of a standard normal truncated to [lower, upper]; divide the target std by it to get the sampling std."""
    mass = (math.erf(upper / _SQRT2) - math.erf(lower / _SQRT2)) / 2.0
    phi_lo, phi_hi = _standard_normal_density(lower), _standard_normal_density(upper)
    variance = 1.0 - (upper * phi_hi - lower * phi_lo) / mass - ((phi_lo - phi_hi) / mass) ** 2
    return math.sqrt(variance)


@torch.no_grad()
def trunc_normal_(tensor: torch.Tensor, std: float = 1.0, lower: float = -2.0, upper: float = 2.0) -> torch.Tensor:
    """Fill `tensor` in place with a truncated normal whose realised std is `std` (bounds in units of σ).

    A uniform draw in [erf(lower/√2), erf(upper/√2)] goes through erfinv and is scaled by the corrected std.
    std == 0 zero-fills (the puzzle-embedding table). Draws from the global torch RNG, so seeding
    `torch.manual_seed` before building the model makes construction reproducible.
    """
    if std == 0:
        return tensor.zero_()
    sampling_std = std / truncated_normal_std_correction(lower, upper)
    tensor.uniform_(math.erf(lower / _SQRT2), math.erf(upper / _SQRT2))
    tensor.erfinv_()
    tensor.mul_(_SQRT2 * sampling_std)
    tensor.clamp_(lower * sampling_std, upper * sampling_std)
    return tensor
