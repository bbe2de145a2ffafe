"""Learning-rate schedule of docs/reference.md §2.5: linear warm-up from 0, then cosine toward lr_min_ratio * lr.

With the official default lr_min_ratio = 1.0 the cosine part is flat, i.e. constant after warm-up.
"""

from __future__ import annotations

import math


def learning_rate(step: int, base_lr: float, warmup_steps: int, total_steps: int, min_ratio: float = 1.0) -> float:
    """LR used by optimizer step ``step`` (1-based, as the official loop increments before computing it)."""
    if step < warmup_steps:
        return base_lr * step / max(1, warmup_steps)
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    progress = min(max(progress, 0.0), 1.0)
    return base_lr * (min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress)))
