"""What a publisher hands to ``ModelStore.publish``: one typed request instead of a long keyword list, so the CLI,
the Prefect flow and Python callers build the same thing (and Prefect can record it as a flow parameter)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class PublishRequest(BaseModel):
    """An exported model folder (``model.safetensors`` + ``config.json``) and the facts to record with it.

    Names, aliases and the version are checked by ``publish`` itself (its errors name the store), not here.
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    model_dir: Path
    metrics: dict[str, Any] | None = Field(None, description="None: model_dir/metrics.json (if any)")
    metrics_log: Path | None = Field(
        None, description="metrics.jsonl for the training curve; None: beside the weights or in the run folder above"
    )
    config: dict[str, Any] | None = Field(None, description="the full training config; None: the exported config")
    selection: dict[str, Any] | None = Field(
        None, description="which step was handed on and why (validation metrics); None: selection.json of the run"
    )
    dataset_dir: Path | None = Field(None, description="built dataset folder (its metadata.json is recorded)")
    dataset_metadata: dict[str, Any] | None = Field(None, description="None: read from dataset_dir")
    dvc_stage: str | None = Field(None, description="dvc.lock stage whose hashes are recorded")
    dvc_lock: Path | None = Field(None, description="None: repo_dir/dvc.lock")
    repo_dir: Path | None = Field(None, description="checkout whose git state is recorded; None: this one")
    ray_run_name: str | None = None
    tune_run_name: str | None = None
    tune_trial_name: str | None = None
    timestamps: dict[str, str] = Field(default_factory=dict, description="named ISO times besides created_at")
    version: int | None = Field(None, description="explicit version (refused if it exists); None: the next number")
    aliases: list[str] = Field(default_factory=list, description="aliases to move besides latest")
    extra: dict[str, Any] = Field(default_factory=dict, description="free-form notes recorded in the manifest")
