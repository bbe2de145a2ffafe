"""One typed configuration tree for a training run, loaded from a YAML preset plus dotted ``--set`` overrides.

The resolved tree is written into every checkpoint and export (``config.json``), so a run can be resumed,
evaluated or published from its folder alone. Presets live in ``trm/presets/<name>.yaml``; a preset may name
another with ``extends: <name>`` and list only what differs. Dataset build parameters are not part of it: they
live in ``params.yaml`` (see ``trm.data.build``); a preset only names the dataset.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from trm.errors import UsageError
from trm.overrides import OverrideError, deep_merge, parse_assignment, set_dotted
from trm.paths import data_root

PRESETS_DIR = Path(__file__).resolve().parent / "presets"


class ConfigError(UsageError):
    """A preset or override that cannot be turned into a valid TRMConfig; the message names the source and key."""


# ModelConfig sizes a preset leaves at 0 and a built dataset's metadata.json fills in (same field names there)
DATASET_SIZES = ("seq_len", "vocab_size", "num_puzzle_identifiers")


class ModelConfig(BaseModel):
    """Shape and recursion of the TRM network (docs/reference.md §1). Defaults are the paper's ARC/Maze values."""

    model_config = ConfigDict(extra="forbid")

    # filled from the dataset's metadata.json when left at 0
    seq_len: int = 0
    vocab_size: int = 0
    num_puzzle_identifiers: int = 0

    hidden_size: int = 512
    num_heads: int = 8
    expansion: float = 4.0
    L_layers: int = Field(
        2, description="blocks in the one shared network (paper ablation on Sudoku: 4 layers with n=3 gives 79.5%)"
    )
    H_cycles: int = Field(3, description="T: recursion processes per supervision step")
    L_cycles: int = Field(4, description="n: z-updates per process")
    puzzle_emb_ndim: int = 512  # 0 disables the puzzle embedding
    puzzle_emb_len: int = 16  # prefix slots; 0 = ceil(puzzle_emb_ndim / hidden_size)
    pos_encodings: Literal["rope", "learned", "none"] = "rope"
    mlp_t: bool = Field(
        False,
        description="mix tokens with an MLP over the sequence axis instead of self-attention (the paper's "
        "Sudoku-MLP; use with pos_encodings=none); False = attention",
    )
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-5
    halt_max_steps: int = Field(
        16, description="N_sup: most supervision steps a row gets in training; evaluation runs exactly this many"
    )
    halt_exploration_prob: float = 0.1
    no_ACT_continue: bool = Field(
        True,
        description="True = TRM: halt when q_halt > 0, no continue target. False = HRM-style: halt when q_halt > "
        "q_continue, which learns a bootstrapped target from a second no-grad inner forward (paper ablation: 86.1% "
        "against 87.4% on Sudoku)",
    )
    act: bool = Field(
        True,
        description="adaptive halting in training. False = every row runs exactly halt_max_steps supervision steps "
        "before it is replaced (no q_halt halting, no exploration); the q head is still trained as usual so adaptive "
        "inference stays usable. Evaluation is the same either way (it always runs halt_max_steps steps)",
    )
    one_step_gradient: bool = Field(
        False,
        description="HRM's 1-step gradient (a paper ablation: 56.5% against 87.4% on Sudoku): only the last z "
        "update and the last y update of a supervision step are differentiated. False = TRM: backpropagate "
        "through the whole last process (n+1 network calls)",
    )
    forward_dtype: Literal["float32", "bfloat16"] = "float32"  # the trainer picks bfloat16 on CUDA


class DataConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="built dataset name (looked up under root) or a path to a built dataset folder")
    root: str | None = Field(None, description="folder holding built datasets; default trm.paths.data_root()")

    def resolve_path(self) -> Path:
        """Folder of the built dataset: an existing path wins, else ``root/name``."""
        as_path = Path(self.name).expanduser()
        if as_path.is_absolute() or (as_path / "metadata.json").exists():
            return as_path
        root = Path(self.root).expanduser() if self.root else data_root()
        return root / self.name


class DepthStage(BaseModel):
    """One stage of ``train.depth_curriculum``: the recursion depth used until a fraction of the step budget."""

    model_config = ConfigDict(extra="forbid")

    until: float = Field(gt=0, lt=1, description="this stage ends once this fraction of the step budget is done")
    H_cycles: int = Field(ge=1, description="T during this stage (at most model.H_cycles)")
    L_cycles: int = Field(ge=1, description="n during this stage (at most model.L_cycles)")


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    global_batch_size: int = Field(768, gt=0, description="rows per optimizer step summed over ranks")
    epochs: float | None = Field(None, gt=0, description="budget: epochs*groups*mean_examples/batch (reference §2.5)")
    max_steps: int | None = Field(None, gt=0, description="optimizer steps; wins over epochs when both are set")
    lr: float = Field(1e-4, ge=0)
    lr_min_ratio: float = Field(1.0, ge=0, le=1, description="1.0 = constant after warm-up (official default)")
    lr_warmup_steps: int = Field(2000, ge=0)
    weight_decay: float = Field(0.1, ge=0)
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.95, ge=0, lt=1)
    puzzle_emb_lr: float = Field(1e-2, ge=0)
    puzzle_emb_weight_decay: float = Field(0.1, ge=0)
    ema: bool = Field(
        True,
        description="evaluate, checkpoint-select and export an exponential moving average of the weights (ema_rate); "
        "False = the live weights (paper ablation: 79.9% without EMA against 87.4% on Sudoku)",
    )
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
    depth_curriculum: list[DepthStage] = Field(
        default_factory=list,
        description="recursion-depth curriculum, beyond the paper, after the depth curriculum of CGAR (arXiv "
        "2511.08653): stages [{until, H_cycles, L_cycles}, ...]; an optimizer step uses the first stage whose `until` "
        "is above the fraction of the step budget done before it, and the model's own H_cycles/L_cycles after the "
        "last stage. CGAR's Sudoku schedule for T=3, n=6 is [{until: 0.3, H_cycles: 1, L_cycles: 2}, {until: 0.6, "
        "H_cycles: 2, L_cycles: 4}]. Evaluation and export always use the full depth. [] = off (fixed depth, as "
        "the official code)",
    )

    @model_validator(mode="after")
    def _needs_budget(self) -> TrainConfig:
        if self.epochs is None and self.max_steps is None:
            raise ValueError("train: set epochs or max_steps")
        return self

    @field_validator("depth_curriculum")
    @classmethod
    def _stages_in_order(cls, stages: list[DepthStage]) -> list[DepthStage]:
        for index in range(1, len(stages)):
            if stages[index].until <= stages[index - 1].until:
                raise ValueError(
                    f"stage {index} has until={stages[index].until}, not above stage {index - 1}'s "
                    f"{stages[index - 1].until}: `until` must increase from stage to stage"
                )
        return stages


StrategyName = Literal["fixed", "adaptive", "trajectories", "first_to_halt", "vote"]
# The fields each strategy reads, in label order; another field away from its default is refused (it would be ignored).
STRATEGY_FIELDS: dict[str, tuple[str, ...]] = {
    "fixed": ("steps",),
    "adaptive": ("steps", "halt_threshold", "stable", "calibrate"),
    "trajectories": ("steps", "trajectories", "noise", "seed"),
    "first_to_halt": ("steps", "halt_threshold", "stable", "trajectories", "noise", "seed"),
    "vote": ("steps", "votes", "seed"),
}


class InferenceConfig(BaseModel):
    """How a model turns a puzzle into an answer (``trm.evaluate.strategies.solve_batch``): used by `trm solve`,
    `trm evaluate --strategy` and the evaluate stage. Also accepted as its CLI form, e.g. ``"fixed:steps=64"``
    (``parse_strategy``), wherever a config holds one."""

    # an infinite halt_threshold (never halt early) survives a JSON dump (config.json) as "Infinity"
    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="strings")

    strategy: StrategyName = Field(
        "fixed",
        description="fixed = N steps; adaptive = stop at the first q_halt > halt_threshold (or a stable answer); "
        "trajectories = K noisy "
        "runs, the highest final q_halt wins; first_to_halt = K noisy runs, the first to halt wins; vote = augmented "
        "copies (Sudoku, Maze), majority of the answers mapped back",
    )
    steps: int | None = Field(
        None,
        ge=1,
        description="supervision steps (the maximum for adaptive/first_to_halt); None = halt_max_steps; may exceed it",
    )
    halt_threshold: float = Field(0.0, description="q_halt logit above which a run halts (adaptive, first_to_halt)")
    stable: int = Field(
        0,
        ge=0,
        description="adaptive, first_to_halt: a run also halts once its answer has come out the same for this many "
        "steps in a row after the step that first gave it (0 = only q_halt halts)",
    )
    trajectories: int = Field(8, ge=1, description="K runs per puzzle; run 0 starts from the plain initial state")
    noise: float = Field(0.1, ge=0, description="std of the Gaussian noise added to the initial y, z of runs 1..K-1")
    votes: int = Field(8, ge=1, description="augmented copies per puzzle for vote; copy 0 is the identity")
    seed: int = Field(0, description="seeds the trajectory noise and the vote's Sudoku transforms")
    calibrate: bool = Field(
        False,
        description="adaptive: choose halt_threshold and stable on the val split first (the cheapest pair whose exact "
        "accuracy is within 0.5 points of fixed N steps; trm/evaluate/calibration.py)",
    )

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, data: Any) -> Any:
        return _strategy_fields(data) if isinstance(data, str) else data

    @model_validator(mode="after")
    def _only_fields_that_apply(self) -> InferenceConfig:
        if self.halt_threshold != self.halt_threshold:  # NaN never compares: nothing would ever halt
            raise ValueError("halt_threshold must be a number, not NaN")
        if self.calibrate and (self.halt_threshold != 0.0 or self.stable != 0):
            raise ValueError("calibrate chooses halt_threshold and stable: give one or the other")
        fields = type(self).model_fields
        ignored = fields.keys() - {"strategy", *STRATEGY_FIELDS[self.strategy]}
        # a dumped config (config.json) names every field: only values that differ from the default are refused
        extra = sorted(name for name in ignored if getattr(self, name) != fields[name].default)
        if extra:
            raise ValueError(f"strategy {self.strategy!r} reads only {_reads(self)}; also set: {', '.join(extra)}")
        return self

    def label(self) -> str:
        """Short stable name: the strategy and the fields it reads that differ from their defaults, e.g.
        ``trajectories:trajectories=16,noise=0.2``; ``parse_strategy(label)`` gives this config back."""
        fields = type(self).model_fields
        parts = [
            f"{name}={_format_value(getattr(self, name))}"
            for name in STRATEGY_FIELDS[self.strategy]
            if getattr(self, name) != fields[name].default
        ]
        return self.strategy + (":" + ",".join(parts) if parts else "")


def _reads(config: InferenceConfig) -> str:
    return ", ".join(STRATEGY_FIELDS[config.strategy]) or "nothing"


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, float) else str(value)


def _strategy_fields(text: str) -> dict[str, Any]:
    """``name[:key=value,...]`` -> the field dict of an InferenceConfig; ValueError names the bad part."""
    name, _, rest = text.strip().partition(":")
    if name not in STRATEGY_FIELDS:
        raise ValueError(f"strategy {text!r}: unknown strategy {name!r}; expected one of {list(STRATEGY_FIELDS)}")
    fields: dict[str, Any] = {"strategy": name}
    for item in rest.split(",") if rest.strip() else []:
        if item.strip() == "calibrate":  # shorthand: adaptive:calibrate
            item = "calibrate=true"
        key, sep, value = (part.strip() for part in item.partition("="))
        if not sep or not key or not value:
            raise ValueError(f"strategy {text!r}: {item.strip()!r} is not key=value")
        if key not in STRATEGY_FIELDS[name]:
            what = "is unknown" if key not in InferenceConfig.model_fields else f"does not apply to {name}"
            raise ValueError(f"strategy {text!r}: key {key!r} {what}; {name} takes {list(STRATEGY_FIELDS[name])}")
        if key in fields:
            raise ValueError(f"strategy {text!r}: {key!r} given twice")
        if key == "calibrate":
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError(f"strategy {text!r}: calibrate={value!r} is not true or false")
            fields[key] = value.lower() in ("true", "1")
            continue
        kind = float if key in ("halt_threshold", "noise") else int
        try:
            fields[key] = kind(value)
        except ValueError:
            raise ValueError(
                f"strategy {text!r}: {key}={value!r} is not {'a number' if kind is float else 'an integer'}"
            ) from None
    return fields


def parse_strategy(text: str) -> InferenceConfig:
    """The CLI form ``fixed``, ``fixed:steps=64``, ``adaptive:halt_threshold=1.5``,
    ``trajectories:trajectories=16,noise=0.2,seed=1``, ``vote:votes=8`` -> InferenceConfig. A ValueError names the
    bad key or value."""
    fields = _strategy_fields(text)
    try:
        return InferenceConfig.model_validate(fields)
    except ValidationError as err:
        problems = [f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in err.errors()]
        raise ValueError(f"strategy {text!r}: " + "; ".join(problems)) from None


class EvalConfig(BaseModel):
    """Periodic evaluation during training and the choice of the checkpoint a run hands on. Everything here uses
    the validation split: the test split is measured once, after training, on the selected checkpoint."""

    model_config = ConfigDict(extra="forbid")

    batch_size: int = Field(768, gt=0)
    modes: list[Literal["fixed", "adaptive"]] = Field(default_factory=lambda: ["fixed"])  # type: ignore[arg-type]
    split: str = Field("val", description="split of periodic evaluation, selection, early stopping, Tune ranking")
    select: Literal["best", "last"] = Field("best", description="hand on the best-scoring evaluation or the last step")
    metric: str = Field(
        "exact_accuracy", description="what 'best' means: a key of the first mode's summary (e.g. ARC/pass@2)"
    )
    patience: int | None = Field(
        None, ge=1, description="stop when `metric` has not improved for this many evaluations; None = never"
    )
    max_groups: int | None = Field(
        None, gt=0, description="evaluate only the first N groups (puzzles, ARC tasks) of a split; None = all"
    )
    max_variants: int | None = Field(
        None, gt=0, description="and of each group only its first M puzzles (augmented variants); None = all"
    )
    strategies: list[InferenceConfig] = Field(
        default_factory=list,
        description="inference strategies the evaluate stage measures on the test split besides the official fixed "
        "pass (each an InferenceConfig or its CLI form, e.g. 'trajectories:trajectories=16')",
    )

    @model_validator(mode="after")
    def _never_on_test(self) -> EvalConfig:
        if self.split == "test":
            raise ValueError(
                "eval.split: 'test' is measured once, after training, on the selected checkpoint; selecting, early "
                "stopping and ranking on it would bias every reported score (use 'val')"
            )
        return self


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

    @field_validator("train")
    @classmethod
    def _curriculum_within_model_depth(cls, train: TrainConfig, info: ValidationInfo) -> TrainConfig:
        model = info.data.get("model")  # absent when the model section itself failed validation
        if isinstance(model, ModelConfig):
            check_depth_curriculum(train.depth_curriculum, model)
        return train


def check_depth_curriculum(stages: list[DepthStage], model: ModelConfig) -> None:
    """A curriculum stage may only be shallower than the model's full depth (or equal to it)."""
    for index, stage in enumerate(stages):
        for key in ("H_cycles", "L_cycles"):
            if getattr(stage, key) > getattr(model, key):
                raise ValueError(
                    f"depth_curriculum stage {index} has {key}={getattr(stage, key)}, above model.{key}="
                    f"{getattr(model, key)}: a stage may not be deeper than the full model"
                )


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


def read_preset(preset: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
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
    return deep_merge(read_preset(parent, (*_seen, path)), raw)


def check_key(key: str, model: type[BaseModel] = TRMConfig) -> None:
    """Reject a dotted key that does not exist in the tree, naming the valid choices at the failing level."""
    parts = key.split(".")
    current: type[BaseModel] | None = model
    for depth, part in enumerate(parts):
        if current is None:
            raise ConfigError(f"--set {key}: {'.'.join(parts[:depth])} is a value, not a section")
        fields = current.model_fields
        if part not in fields:
            where = ".".join(parts[:depth]) or "top level"
            raise ConfigError(f"--set {key}: unknown key {part!r} in {where}; valid: {sorted(fields)}")
        annotation = fields[part].annotation
        current = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def apply_values(raw: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the raw config dict with each dotted key of ``values`` set (keys checked against the tree)."""
    result = deep_merge({}, raw)
    for key, value in values.items():
        check_key(key)
        set_dotted(result, key, value)
    return result


def apply_overrides(raw: Mapping[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b=value`` strings (values parsed as YAML, so 3, true, [a, b] work) to a raw config dict."""
    try:
        values = [parse_assignment(item) for item in overrides]
    except OverrideError as err:
        raise ConfigError(str(err)) from None
    result = deep_merge({}, raw)
    for key, value in values:  # in order: a later override of the same key wins
        result = apply_values(result, {key: value})
    return result


def validate_config(raw: dict[str, Any], source: str) -> TRMConfig:
    try:
        return TRMConfig.model_validate(raw)
    except ValidationError as err:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']} (got {e.get('input')!r})" for e in err.errors()]
        raise ConfigError(f"{source}: invalid config: " + "; ".join(problems)) from None


def load_config(preset: str | Path, overrides: list[str] | None = None) -> TRMConfig:
    """Preset (name or YAML path) + dotted overrides -> validated TRMConfig. Errors name the preset and key."""
    raw = apply_overrides(read_preset(preset), list(overrides or []))
    return validate_config(raw, f"preset {str(preset)!r}")
