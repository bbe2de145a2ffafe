"""The exported model: ``model.safetensors`` (EMA weights + buffers, our parameter names) + ``config.json`` (the
resolved TRMConfig, dataset-derived sizes filled in). This is what evaluation, the artifact store and users load;
it holds no optimizer state and is never unpickled.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from trm.atomic import atomic_folder
from trm.config import DATASET_SIZES, ModelConfig, TRMConfig
from trm.data.dataset_folder import read_metadata
from trm.model import TRM
from trm.train.checkpoint import read_checkpoint

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


class ExportError(ValueError):
    """An export (or checkpoint) folder that cannot be loaded as a model; the message names the path."""


def export_model(model: TRM, config: TRMConfig, folder: Path) -> Path:
    """Write ``model`` (as given: pass the EMA model) and ``config`` into ``folder`` atomically."""
    folder = Path(folder)
    with atomic_folder(folder) as tmp:
        tensors = {k: v.detach().to("cpu").clone().contiguous() for k, v in model.state_dict().items()}
        save_file(tensors, str(tmp / MODEL_FILE), metadata={"format": "trm-model"})
        (tmp / CONFIG_FILE).write_text(json.dumps(config.model_dump(mode="json"), indent=1, sort_keys=True))
    return folder


def fill_from_dataset(model: ModelConfig, dataset_dir: Path, required: bool = False) -> ModelConfig:
    """Sizes left at 0 (seq_len, vocab_size, num_puzzle_identifiers) taken from a built dataset's metadata.json;
    without one the config is returned as is, unless ``required``."""
    if not (Path(dataset_dir) / "metadata.json").is_file():
        if required:
            raise FileNotFoundError(f"dataset {dataset_dir}: no metadata.json")
        return model
    meta = read_metadata(Path(dataset_dir))
    sizes = {key: getattr(meta, key) for key in DATASET_SIZES}
    return model.model_copy(update={k: v for k, v in sizes.items() if getattr(model, k) == 0})


def _model_from(config: TRMConfig, state: dict[str, torch.Tensor], source: Path, device: torch.device | str) -> TRM:
    model_cfg = config.model
    if model_cfg.seq_len == 0 or model_cfg.vocab_size == 0:
        raise ExportError(f"{source}: config has unresolved model sizes (seq_len/vocab_size = 0)")
    if torch.device(device).type != "cuda" and model_cfg.forward_dtype != "float32":
        model_cfg = model_cfg.model_copy(update={"forward_dtype": "float32"})  # bf16 on CPU is ~100x slower
        config = config.model_copy(update={"model": model_cfg})
    model = TRM(model_cfg)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ExportError(
            f"{source}: weights do not fit the config: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    return model.to(device).eval()


def load_exported(path: Path | str, device: torch.device | str = "cpu") -> tuple[TRM, TRMConfig]:
    """(model in eval mode, TRMConfig) from an export folder, or from a training checkpoint folder (its EMA
    weights when it has them, else the live weights)."""
    folder = Path(path)
    if (folder / MODEL_FILE).is_file() and (folder / CONFIG_FILE).is_file():
        try:
            config = TRMConfig.model_validate_json((folder / CONFIG_FILE).read_text())
        except Exception as err:
            raise ExportError(f"{folder / CONFIG_FILE}: not a valid TRM config ({err})") from err
        state = load_file(str(folder / MODEL_FILE))
        model = _model_from(config, state, folder, device)
        return model, config
    if (folder / "state.safetensors").is_file():
        tensors, meta = read_checkpoint(folder)
        config = TRMConfig.model_validate(meta["config"])
        state = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
        for key, value in tensors.items():
            if key.startswith("ema."):
                state[key.removeprefix("ema.")] = value
        return _model_from(config, state, folder, device), config
    raise ExportError(f"{folder}: neither an exported model ({MODEL_FILE} + {CONFIG_FILE}) nor a checkpoint folder")


def find_checkpoint_folder(path: Path) -> Path:
    """The folder holding our checkpoint (state.safetensors) or an export (model.safetensors) at or below ``path``:
    a Ray checkpoint directory may wrap it in a sub-folder."""
    path = Path(path)
    for marker in ("model.safetensors", "state.safetensors"):
        if (path / marker).is_file():
            return path
    for marker in ("model.safetensors", "state.safetensors"):
        found = sorted(path.rglob(marker))
        if found:
            return found[0].parent
    raise FileNotFoundError(f"{path}: no model.safetensors or state.safetensors inside this checkpoint")
