"""Checkpoint folders: ``state.safetensors`` (every tensor: model, EMA, optimizer moments, carry, RNG states as
uint8) + ``state.json`` (step, sampler position, numpy/python RNG state, resolved config). Loading uses safetensors
and JSON only (never pickle), and folders are written atomically, so a crash never leaves a half checkpoint that
``latest_checkpoint`` would pick up."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from trm.atomic import atomic_folder
from trm.train.hooks import Report
from trm.train.trainer import Trainer

STATE_TENSORS = "state.safetensors"
STATE_JSON = "state.json"
_STEP_DIR = re.compile(r"^step_(\d+)$")


class CheckpointError(ValueError):
    """A checkpoint folder that is missing files or cannot be read (message names the path)."""


def write_checkpoint(folder: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write tensors + JSON atomically into ``folder`` (replacing an existing one only after success)."""
    folder = Path(folder)
    with atomic_folder(folder) as tmp:
        save_file(
            {k: v.contiguous() for k, v in tensors.items()},
            str(tmp / STATE_TENSORS),
            metadata={"format": "trm-checkpoint"},
        )
        (tmp / STATE_JSON).write_text(json.dumps(meta, indent=1, sort_keys=True))
    return folder


def read_checkpoint(folder: Path, device: str = "cpu") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    folder = Path(folder)
    tensors_file, json_file = folder / STATE_TENSORS, folder / STATE_JSON
    for needed in (tensors_file, json_file):
        if not needed.is_file():
            raise CheckpointError(f"{folder}: not a checkpoint folder ({needed.name} is missing)")
    try:
        meta: dict[str, Any] = json.loads(json_file.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{json_file}: invalid JSON ({err})") from err
    try:
        tensors = load_file(str(tensors_file), device=device)
    except Exception as err:
        raise CheckpointError(f"{tensors_file}: unreadable safetensors file ({err})") from err
    return tensors, meta


def save_trainer(trainer: Trainer, folder: Path, extra: dict[str, Any] | None = None) -> Path | None:
    """Checkpoint a Trainer. Collective when distributed (all ranks must call); only rank 0 writes."""
    tensors, meta = trainer.state_dict()
    if trainer.rank != 0:
        return None
    return write_checkpoint(folder, tensors, {**meta, **(extra or {})})


def load_trainer(trainer: Trainer, folder: Path) -> dict[str, Any]:
    """Restore a Trainer from a checkpoint folder; returns the JSON state."""
    tensors, meta = read_checkpoint(folder)
    trainer.load_state_dict(tensors, meta)
    return meta


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step_{step}"


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The complete checkpoint with the highest step under ``run_dir/checkpoints`` (None if there is none)."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return None
    found = []
    for child in root.iterdir():
        match = _STEP_DIR.match(child.name)
        if match and (child / STATE_TENSORS).is_file() and (child / STATE_JSON).is_file():
            found.append((int(match.group(1)), child))
    return max(found)[1] if found else None


class FolderCheckpoints:
    """The checkpoint hook of a local run: ``run_dir/checkpoints/step_<N>/``; with ``resume`` the latest one there
    is restored. Reports without a checkpoint need no delivery (they are in metrics.jsonl already)."""

    def __init__(self, run_dir: Path, resume: bool = False) -> None:
        self.run_dir = Path(run_dir)
        self.resume = resume

    def restore(self, trainer: Trainer) -> int | None:
        found = latest_checkpoint(self.run_dir) if self.resume else None
        if found is None:
            return None
        load_trainer(trainer, found)
        return trainer.step_count

    def save(self, trainer: Trainer, report: Report) -> str | None:
        folder = save_trainer(trainer, checkpoint_dir(self.run_dir, report.step))
        return str(folder) if folder is not None else None

    def report(self, report: Report) -> None:
        return None
