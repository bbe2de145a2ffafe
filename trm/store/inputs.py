"""Checks and clean-up of what a publisher hands over: the exported model folder and JSON-able metadata."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from safetensors import safe_open

from trm.store.errors import StoreError

MODEL_FILES = ("model.safetensors", "config.json")


def check_model_folder(model_dir: Path) -> dict[str, Any]:
    """The exported model folder must hold a readable safetensors file and a JSON config (returned)."""
    if not model_dir.is_dir():
        raise StoreError(f"{model_dir}: exported model folder not found")
    for file_name in MODEL_FILES:
        if not (model_dir / file_name).is_file():
            raise StoreError(f"{model_dir / file_name}: missing; an exported model needs {' + '.join(MODEL_FILES)}")
    try:
        with safe_open(str(model_dir / "model.safetensors"), framework="numpy") as handle:
            if not list(handle.keys()):
                raise StoreError(f"{model_dir / 'model.safetensors'}: holds no tensors")
    except StoreError:
        raise
    except Exception as error:  # safetensors raises several types for a bad header
        raise StoreError(f"{model_dir / 'model.safetensors'}: not a readable safetensors file: {error}") from error
    return read_optional_json(model_dir / "config.json")


def plain_json(value: dict[str, Any]) -> dict[str, Any]:
    """A JSON-safe copy: numpy/torch scalars and arrays become numbers/lists, NaN/inf become strings, paths and
    times become strings (trainers hand over metrics straight from tensors)."""

    def convert(item: Any) -> Any:
        if hasattr(item, "tolist"):
            return convert(item.tolist())
        if hasattr(item, "item") and callable(item.item):
            return convert(item.item())
        if isinstance(item, float) and not math.isfinite(item):
            return str(item)
        if isinstance(item, dict):
            return {str(k): convert(v) for k, v in item.items()}
        if isinstance(item, (list, tuple)):
            return [convert(v) for v in item]
        if item is None or isinstance(item, (bool, int, float, str)):
            return item
        return str(item)

    return {str(key): convert(item) for key, item in value.items()}


def read_optional_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise StoreError(f"{path}: not valid JSON: {error}") from error
    if not isinstance(value, dict):
        raise StoreError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value
