"""One training process (contract 4): loss, optimizers, EMA, schedule, the step, the loop, checkpoints, export.

Heavy imports stay lazy so `import trm.train` is cheap for the CLI."""

from __future__ import annotations

from typing import Any

__all__ = ["Trainer", "train", "TrainResult", "export_model", "load_exported", "save_trainer", "load_trainer"]


def __getattr__(name: str) -> Any:
    if name == "Trainer":
        from trm.train.trainer import Trainer

        return Trainer
    if name in ("train", "TrainResult"):
        from trm.train import loop

        return getattr(loop, name)
    if name in ("export_model", "load_exported"):
        from trm.train import export

        return getattr(export, name)
    if name in ("save_trainer", "load_trainer"):
        from trm.train import checkpoint

        return getattr(checkpoint, name)
    raise AttributeError(f"module 'trm.train' has no attribute {name!r}")
