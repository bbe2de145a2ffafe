"""Where things live by default; every path can be overridden by the caller or the environment."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def datasets_root() -> Path:
    """Raw offline datasets: $TRM_DATASETS, else `../shared/datasets` beside the repository."""
    env = os.environ.get("TRM_DATASETS")
    return Path(env) if env else (REPO_ROOT.parent / "shared" / "datasets").resolve()


def data_root() -> Path:
    """Built (DVC-tracked) datasets: $TRM_DATA, else `data/` in the repository."""
    env = os.environ.get("TRM_DATA")
    return Path(env) if env else REPO_ROOT / "data"


def params_file() -> Path:
    """Dataset build parameters (DVC's params file): $TRM_PARAMS, else `params.yaml` in the repository."""
    env = os.environ.get("TRM_PARAMS")
    return Path(env) if env else REPO_ROOT / "params.yaml"
