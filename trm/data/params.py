"""Typed build parameters of every dataset, read from their one source: the params file (DVC's ``params.yaml``).

The models check types and ranges and refuse unknown keys, but hold no default values: every value comes from the
``NAME:`` section of the params file, so what DVC tracks is exactly what the builder gets.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import ErrorDetails

from trm.errors import UsageError
from trm.overrides import apply_dotted, flatten

P = TypeVar("P", bound="Params")


class ParamsError(UsageError):
    """Build parameters that cannot be used; the message names the params file, the section and the key."""


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


VAL_COUNT = "source puzzles carved out of the training rows (seeded, whole groups) as the validation split; 0 = none"


class SudokuExtreme1kParams(Params):
    train_csv: str
    val_count: int = Field(ge=0, description=VAL_COUNT)
    num_aug: int = Field(ge=0)
    seed: int
    test_count: int = Field(ge=0, description="generated hard 9x9 test puzzles, disjoint from train")
    test_min_rating: int = Field(ge=0)


class SudokuExtremeFullParams(Params):
    train_csv: str
    test_csv: str
    subsample_size: int | None = Field(ge=1, description="train rows kept (seeded); None keeps all")
    min_difficulty: int | None
    val_count: int = Field(ge=0, description=VAL_COUNT)
    num_aug: int = Field(ge=0)
    seed: int


class MazeHardParams(Params):
    train_csv: str
    test_csv: str
    val_count: int = Field(ge=0, description=VAL_COUNT)
    seed: int = Field(description="seeds the validation draw (the maze files need no other randomness)")
    aug: bool
    rows: int | None = Field(ge=1, description="maze height; None = square, inferred from the row length")
    cols: int | None = Field(ge=1)


class ArcParams(Params):
    source: Literal["kaggle", "json"]
    subsets: list[str]
    test_set: str
    val_tasks: int = Field(ge=0, description="training tasks whose test pairs become the validation split (seeded)")
    num_aug: int = Field(ge=0)
    seed: int
    kaggle_dir: str
    json_folders: dict[str, str]

    @model_validator(mode="after")
    def _test_set_in_subsets(self) -> ArcParams:
        if self.test_set not in self.subsets:
            raise ValueError(f"test_set {self.test_set!r} must be one of subsets {self.subsets}")
        return self


class SudokuGenParams(Params):
    train_count: int = Field(ge=1)
    val_count: int = Field(ge=1, description="generated validation puzzles, grids disjoint from train and test")
    test_count: int = Field(ge=0)
    num_aug: int = Field(ge=0)
    min_rating: int = Field(ge=0)
    blanks: int | None = Field(ge=1, description="None: minimal puzzles; a number: that many blank cells (easier)")
    seed: int


class MazeGenParams(Params):
    rows: int = Field(ge=2)
    cols: int = Field(ge=2)
    train_count: int = Field(ge=1)
    val_count: int = Field(ge=1, description="generated validation mazes, layouts disjoint from train and test")
    test_count: int = Field(ge=0)
    min_path_len: int = Field(ge=1)
    density_min: float = Field(ge=0.0, lt=1.0)
    density_max: float = Field(ge=0.0, lt=1.0)
    aug: bool
    seed: int


def read_section(params_file: Path, name: str) -> dict[str, Any]:
    """The ``name:`` mapping of the params file. A missing section is an error, never an empty build: DVC would
    believe the parameters it tracks were applied."""
    try:
        document = yaml.safe_load(params_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParamsError(f"{params_file}: params file not found") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise ParamsError(f"{params_file}: unreadable ({error})") from error
    if not isinstance(document, dict) or name not in document:
        raise ParamsError(f"{params_file}: no section {name!r}")
    section = document[name]
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise ParamsError(f"{params_file}: section {name!r} must be a mapping of parameter: value")
    return section


def load_params(model: type[P], params_file: Path, name: str, overrides: Mapping[str, Any] | None = None) -> P:
    """Section ``name`` of ``params_file`` with the dotted ``overrides`` on top, validated by ``model``."""
    section = read_section(params_file, name)
    flat = flatten(overrides or {})
    where = f"{params_file}: section {name!r}"
    _refuse_unknown(model, section, where)
    _refuse_unknown(model, flat, f"dataset {name!r}")
    try:
        return model.model_validate(apply_dotted(section, flat))
    except ValidationError as error:
        raise ParamsError(_describe(error.errors(), where, list(flat))) from None


def _refuse_unknown(model: type[Params], keys: Mapping[str, Any], where: str) -> None:
    known = sorted(model.model_fields)
    for key in keys:
        if key.split(".")[0] not in known:
            raise ParamsError(f"{where}: unknown parameter {key!r} (known: {', '.join(known)})")


def _describe(errors: list[ErrorDetails], where: str, overridden: list[str]) -> str:
    missing = [".".join(str(p) for p in e["loc"]) for e in errors if e["type"] == "missing"]
    if missing:
        keys = ", ".join(repr(key) for key in missing)
        return (
            f"{where}: missing key{'s' if len(missing) > 1 else ''} {keys} (every parameter is set in the params file)"
        )
    problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" if e["loc"] else e["msg"] for e in errors)
    overrides = f", overridden: {', '.join(overridden)}" if overridden else ""
    return f"invalid parameters ({where}{overrides}): {problems}"
