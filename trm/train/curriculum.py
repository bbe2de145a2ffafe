"""The recursion-depth curriculum (``train.depth_curriculum``): which T and n an optimizer step trains with.

The depth is a pure function of the step and the step budget, never of training state, so a resumed run trains
each step at the depth an uninterrupted run would. Evaluation and export never see it: they use the model config.
"""

from __future__ import annotations

from trm.config import DepthStage
from trm.model import RecursionDepth


def depth_at_step(stages: list[DepthStage], step: int, total_steps: int) -> RecursionDepth | None:
    """Depth of 1-based optimizer step ``step``: the first stage whose ``until`` is above the fraction of the
    budget done before the step, (step - 1) / total_steps; None = past the last stage, the model's full depth."""
    done = (step - 1) / max(total_steps, 1)
    for stage in stages:
        if done < stage.until:
            return RecursionDepth(stage.H_cycles, stage.L_cycles)
    return None
