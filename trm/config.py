"""One typed configuration tree for a training run, loaded from a YAML preset plus dotted ``--set`` overrides.

Why one tree: the resolved config is written into every checkpoint and export (``config.json``), so a run can be
resumed, evaluated or published from its folder alone. Presets live in ``trm/presets/<name>.yaml``; a preset may
name another with ``extends: <name>`` and only list what differs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from trm.model.config import ModelConfig

PRESETS_DIR = Path(__file__).resolve().parent / "presets"


class ConfigError(ValueError):
    """A preset or override that cannot be turned into a valid TRMConfig; the message names the source and key."""


class DataConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="built dataset name (looked up under root) or a path to a built dataset folder")
    root: str | None = Field(None, description="folder holding built datasets; default trm.paths.data_root()")
    build: dict[str, Any] = Field(default_factory=dict, description="overrides passed to build_dataset if missing")

    def resolve_path(self) -> Path:
        """Folder of the built dataset: an existing path wins, else ``root/name``."""
        from trm.paths import data_root

        as_path = Path(self.name).expanduser()
        if as_path.is_absolute() or (as_path.exists() and (as_path / "metadata.json").exists()):
            return as_path
        root = Path(self.root).expanduser() if self.root else data_root()
        return root / self.name


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    global_batch_size: int = Field(768, gt=0, description="rows per optimizer step summed over ranks")
    epochs: float | None = Field(None, gt=0, description="spec §2.5 budget: epochs*groups*mean_examples/batch")
    max_steps: int | None = Field(None, gt=0, description="optimizer steps; wins over epochs when both are set")
    lr: float = Field(1e-4, ge=0)
    lr_min_ratio: float = Field(1.0, ge=0, le=1, description="1.0 = constant after warm-up (official default)")
    lr_warmup_steps: int = Field(2000, ge=0)
    weight_decay: float = Field(0.1, ge=0)
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.95, ge=0, lt=1)
    puzzle_emb_lr: float = Field(1e-2, ge=0)
    puzzle_emb_weight_decay: float = Field(0.1, ge=0)
    ema: bool = True
    ema_rate: float = Field(0.999, ge=0, le=1)
    grad_accum_steps: int = Field(1, gt=0, description="micro-batches per optimizer step (each with its carry)")
    seed: int = 0
    interval_unit: Literal["steps", "epochs"] = Field("steps", description="unit of eval/checkpoint intervals")
    eval_interval: float | None = Field(None, gt=0, description="None = evaluate only at the end")
    checkpoint_interval: float | None = Field(None, gt=0, description="None = checkpoint only at the end")
    log_interval: int = Field(1, gt=0, description="steps between metrics.jsonl lines")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compile: bool = Field(False, description="torch.compile the model (CUDA only; ignored on CPU)")
    threads: int | None = Field(None, gt=0, description="torch CPU threads; None = leave torch's default")

    @model_validator(mode="after")
    def _needs_budget(self) -> TrainConfig:
        if self.epochs is None and self.max_steps is None:
            raise ValueError("train: set epochs or max_steps")
        return self


class EvalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    batch_size: int = Field(768, gt=0)
    modes: list[Literal["fixed", "adaptive"]] = Field(default_factory=lambda: ["fixed"])
    split: str = "test"


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "trm"
    output_dir: str = Field("runs", description="the run writes to output_dir/name")

    def path(self) -> Path:
        return Path(self.output_dir).expanduser() / self.name


class TRMConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig
    train: TrainConfig
    eval: EvalConfig = Field(default_factory=EvalConfig)
    run: RunConfig = Field(default_factory=RunConfig)


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def _preset_file(preset: str | Path) -> Path:
    candidate = Path(preset)
    if candidate.suffix in (".yaml", ".yml") and candidate.exists():
        return candidate
    named = PRESETS_DIR / f"{preset}.yaml"
    if named.exists():
        return named
    raise ConfigError(f"unknown preset {str(preset)!r}: not a YAML file and not one of {preset_names()}")


def _deep_merge(base: dict, update: dict) -> dict:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_preset(preset: str | Path, _seen: tuple[Path, ...] = ()) -> dict:
    """The raw dict of a preset with its ``extends`` chain merged in (child keys win)."""
    path = _preset_file(preset)
    if path in _seen:
        raise ConfigError(f"{path}: 'extends' cycle through {[str(p) for p in _seen]}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(raw).__name__}")
    parent = raw.pop("extends", None)
    if parent is None:
        return raw
    return _deep_merge(read_preset(parent, _seen + (path,)), raw)


def _check_key(path: list[str], model: type[BaseModel]) -> None:
    """Reject dotted keys that do not exist in the tree, naming the valid choices at the failing level."""
    current: Any = model
    for depth, part in enumerate(path):
        fields = getattr(current, "model_fields", None)
        if fields is None:
            if depth == len(path) - 1 or current is dict:
                return  # free-form dict (e.g. data.build.*)
            raise ConfigError(f"--set {'.'.join(path)}: {'.'.join(path[:depth])} is not a section")
        if part not in fields:
            where = ".".join(path[:depth]) or "top level"
            raise ConfigError(f"--set {'.'.join(path)}: unknown key {part!r} in {where}; valid: {sorted(fields)}")
        annotation = fields[part].annotation
        current = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else (
            dict if getattr(annotation, "__origin__", None) is dict else None
        )
        if current is dict:
            return
        if current is None and depth < len(path) - 1:
            raise ConfigError(f"--set {'.'.join(path)}: {'.'.join(path[: depth + 1])} is a value, not a section")


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply ``a.b=value`` strings (value parsed as YAML, so 3, true, [a, b] work) to a raw config dict."""
    result = _deep_merge({}, raw)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value")
        key, text = item.split("=", 1)
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise ConfigError(f"--set {item!r}: empty key")
        _check_key(parts, TRMConfig)
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        node = result
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[parts[-1]] = value
    return result


def validate_config(raw: dict, source: str) -> TRMConfig:
    try:
        return TRMConfig.model_validate(raw)
    except ValidationError as err:
        lines = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']} (got {e.get('input')!r})" for e in err.errors()]
        raise ConfigError(f"{source}: invalid config:\n  " + "\n  ".join(lines)) from None


def load_config(preset: str | Path, overrides: list[str] | None = None) -> TRMConfig:
    """Preset (name or YAML path) + dotted overrides -> validated TRMConfig. Errors name the preset and key."""
    raw = apply_overrides(read_preset(preset), list(overrides or []))
    return validate_config(raw, f"preset {str(preset)!r}")


def config_to_json_dict(config: TRMConfig) -> dict:
    return config.model_dump(mode="json")
