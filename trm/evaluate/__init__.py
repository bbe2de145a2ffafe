"""Evaluation: spec §4.1 metrics, fixed 16-step and adaptive-halting inference, the ARC evaluator (§4.2).

Modules: `metrics` (sums over valid rows), `inference` (`evaluate` -> `EvalResult`), `arc` (crop, inverse
augmentation, voting, pass@K, submission.json), `report` (all modes + ARC as one eval.json), `cli` (`trm evaluate`).
Names are imported lazily so that `trm --help` does not pay for torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "evaluate": "trm.evaluate.inference",
    "EvalResult": "trm.evaluate.inference",
    "MetricSums": "trm.evaluate.metrics",
    "ArcEvaluator": "trm.evaluate.arc",
    "ArcResult": "trm.evaluate.arc",
    "ArcTestRows": "trm.evaluate.arc",
    "score_predictions": "trm.evaluate.arc",
    "evaluate_modes": "trm.evaluate.report",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'trm.evaluate' has no attribute {name!r}")
