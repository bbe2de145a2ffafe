"""Search spaces for Ray Tune, read from YAML (``trm/presets/spaces/<name>.yaml``) and checked before Ray starts.

A space file::

    fixed:                 # dotted config overrides applied to every trial
      train.max_steps: 200
    space:                 # dotted key -> exactly one distribution
      train.lr: {loguniform: [1.0e-4, 3.0e-3]}
      model.H_cycles: {choice: [1, 2]}
      train.weight_decay: {grid: [0.1, 1.0]}
    variants:              # optional: named bundles of overrides, a grid crossed with the space's grid
      baseline: {}
      no-ema: {train.ema: false}
    search:                # how to search (all optional, see SearchSettings)
      num_samples: 2

A variant is what one row of an ablation table changes: several keys at once (4 layers *and* fewer z updates), which
a per-key grid cannot express. Each trial records its variant's name under the ``variant`` parameter.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from trm.config import ConfigError, TRMConfig, apply_values, check_key, validate_config

SPACES_DIR = Path(__file__).resolve().parent.parent / "presets" / "spaces"
KINDS = ("grid", "choice", "uniform", "loguniform", "randint", "value")
VARIANT = "variant"  # the trial parameter naming a variant of the space
TUNE_SCORE = "eval_score"  # eval exact accuracy + a token-accuracy tie-break (trm.distributed.train_job)


class SearchSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    num_samples: int = Field(1, gt=0, description="samples per grid point")
    metric: str = TUNE_SCORE
    mode: str = "max"
    scheduler: Literal["asha", "fifo"] = Field(
        "asha", description="asha stops weak trials early; fifo runs every trial to its full budget (an ablation study)"
    )
    grace_period: int = Field(1, gt=0, description="ASHA: reports before a trial can be stopped")
    reduction_factor: float = Field(2, gt=1)
    workers_per_trial: int = Field(1, gt=0)
    cpus_per_worker: float = Field(0.9, gt=0)
    max_concurrent_trials: int | None = Field(None, gt=0, description="None = as many as the cluster can place")
    max_failures: int = Field(1, ge=0)
    seed: int = 0


class StudyRow(BaseModel):
    """What a study's table says beside one variant: the paper's number for the same ablation, if it has one."""

    model_config = ConfigDict(extra="forbid")

    paper: float | None = Field(None, ge=0, le=100, description="the paper's test exact accuracy (%) for this row")
    paper_row: str = Field("", description="the paper's name for the row (it may differ in depth or data)")
    about: str = Field("", description="what the variant changes, in words")


class StudySettings(BaseModel):
    """A space with a ``study`` block is an ablation study: every trial is evaluated on test and published under
    ``name``, and the report sets each variant's mean over seeds beside the paper's number (trm.study)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="experiment (and model) name")
    baseline: str = Field(description="the variant every other row is compared with")
    rows: dict[str, StudyRow] = Field(default_factory=dict)


class SearchSpace(BaseModel):
    """A parsed search-space file: fixed overrides, distributions per dotted key, search settings."""

    model_config = ConfigDict(extra="forbid")

    fixed: dict[str, Any] = Field(default_factory=dict)
    space: dict[str, dict[str, Any]] = Field(default_factory=dict)
    variants: dict[str, dict[str, Any]] = Field(default_factory=dict)
    search: SearchSettings = Field(default_factory=SearchSettings)
    study: StudySettings | None = None

    @model_validator(mode="after")
    def _check_distributions(self) -> SearchSpace:
        for key, dist in self.space.items():
            if len(dist) != 1 or next(iter(dist)) not in KINDS:
                raise ValueError(f"space.{key}: expected exactly one of {KINDS}, got {sorted(dist)}")
            kind, args = next(iter(dist.items()))
            if kind in ("uniform", "loguniform", "randint") and (not isinstance(args, list) or len(args) != 2):
                raise ValueError(f"space.{key}: {kind} needs [low, high], got {args!r}")
            if kind in ("grid", "choice") and (not isinstance(args, list) or not args):
                raise ValueError(f"space.{key}: {kind} needs a non-empty list, got {args!r}")
        for name, overrides in self.variants.items():
            if clash := sorted(overrides.keys() & self.space.keys()):
                raise ValueError(f"variants.{name}: {', '.join(clash)} also searched in space (one or the other)")
        if self.study is not None:
            self._check_study(self.study)
        return self

    def _check_study(self, study: StudySettings) -> None:
        if study.baseline not in self.variants:
            raise ValueError(f"study.baseline: {study.baseline!r} is not one of the variants {sorted(self.variants)}")
        if unknown := sorted(study.rows.keys() - self.variants.keys()):
            raise ValueError(f"study.rows: {', '.join(unknown)} not among the variants {sorted(self.variants)}")

    def grid_size(self) -> int:
        variants = len(self.variants) or 1
        return variants * math.prod(len(d["grid"]) for d in self.space.values() if "grid" in d)

    def check_keys(self) -> None:
        """Every fixed, searched and variant key must exist in the config tree (fails before any trial runs)."""
        for key in [*self.fixed, *self.space]:
            check_key(key)
        for name, overrides in self.variants.items():
            for key in overrides:
                try:
                    check_key(key)
                except ConfigError as err:
                    raise ConfigError(f"variants.{name}: {err}") from err

    def trial_values(self, values: dict[str, Any]) -> dict[str, Any]:
        """A trial's sampled values with its ``variant`` name expanded into the variant's overrides."""
        chosen = dict(values)
        name = chosen.pop(VARIANT, None)
        if name is None:
            return chosen
        if name not in self.variants:
            raise ConfigError(f"unknown variant {name!r}; the space has {sorted(self.variants)}")
        return {**self.variants[name], **chosen}


def load_space(space: str | Path) -> SearchSpace:
    """A space by name (``trm/presets/spaces/<name>.yaml``) or path; errors name the file and the key."""
    path = Path(space)
    if not (path.suffix in (".yaml", ".yml") and path.is_file()):
        path = SPACES_DIR / f"{space}.yaml"
    if not path.is_file():
        names = sorted(p.stem for p in SPACES_DIR.glob("*.yaml"))
        raise ConfigError(f"unknown search space {str(space)!r}: not a YAML file and not one of {names}")
    try:
        loaded = SearchSpace.model_validate(yaml.safe_load(path.read_text()) or {})
        loaded.check_keys()
    except (yaml.YAMLError, ValidationError, ConfigError) as err:
        raise ConfigError(f"{path}: invalid search space: {err}") from err
    return loaded


def trial_config(base: TRMConfig, space: SearchSpace, values: dict[str, Any]) -> TRMConfig:
    """The config of one trial: the base config with the space's fixed values and the trial's sampled values."""
    raw = apply_values(base.model_dump(mode="json"), {**space.fixed, **space.trial_values(values)})
    return validate_config(raw, f"trial {values}")


def check_variants(base: TRMConfig, space: SearchSpace) -> None:
    """Every variant makes a valid config with the base and the fixed values (before Ray starts); the error names
    the variant."""
    for name in space.variants:
        try:
            trial_config(base, space, {VARIANT: name})
        except ConfigError as err:
            raise ConfigError(f"variants.{name}: {err}") from err
