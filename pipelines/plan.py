"""The retrain's parameters, typed, and the check that turns them into a plan before anything starts.

``plan_retrain`` reads only local files (presets, dvc.yaml, search spaces) and the DVC remote list: a wrong
parameter fails here with one ``UsageError`` line naming it, before a Prefect server, Ray, a data build, a run
folder or a store object exists. What needs the outside world (the store, the remote, the cluster) is checked next,
in ``pipelines/preflight.py``.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field

from pipelines.prepare_data import DvcError, remote_names, stage_names
from pipelines.project import project_dir
from pipelines.publish import DEFAULT_RETRIES, DEFAULT_RETRY_DELAY_S
from pipelines.tune import resolve_space
from trm.config import TRMConfig, load_config
from trm.distributed.train_job import check_batch_split
from trm.errors import UsageError
from trm.evaluate.inference import MODES
from trm.s3 import parse_s3_url
from trm.store import StoreError, open_store
from trm.store.manifest import check_alias, check_name

# host:port, ray://host:port, or "auto" (the cluster this machine belongs to)
RAY_ADDRESS = re.compile(r"^(auto|(ray://)?[A-Za-z0-9_.\-]+:\d{1,5})$")


class TuneRequest(BaseModel):
    """Run a Ray Tune search instead of one training run, and publish its best trial."""

    space: str | None = Field(None, description="search space under trm/presets/spaces (default: the preset's)")
    trials: int | None = Field(None, gt=0, description="samples per grid point (default: the space's)")


class Infrastructure(BaseModel):
    """Where the work runs; the defaults are the embedded ones (local Ray, this checkout, no DVC remote)."""

    ray_address: str | None = Field(None, description="Ray cluster address; None starts a local Ray")
    ray_storage: str | None = Field(None, description="Ray checkpoints: a folder or s3://; default in the run folder")
    ray_jobs_url: str | None = Field(
        None, description="the cluster's Jobs API (http://head:8265); default: port 8265 on ray_address's host"
    )
    dvc_remote: str | None = Field(None, description="DVC remote; None = the project's default remote, if any")
    repo_dir: str | None = Field(None, description="project checkout (default: this one)")


def jobs_url(where: Infrastructure) -> str | None:
    """Where training jobs go: the given Jobs API URL, else the dashboard port (8265) of the ``ray_address`` host,
    else None (the local head)."""
    if where.ray_jobs_url or not where.ray_address:
        return where.ray_jobs_url
    host = where.ray_address.removeprefix("ray://").rpartition(":")[0]
    return f"http://{'127.0.0.1' if where.ray_address == 'auto' else host}:8265"


class PublishOptions(BaseModel):
    aliases: list[str] = Field(default_factory=list, description="aliases to move besides latest")
    retries: int = Field(DEFAULT_RETRIES, ge=0, description="publish retries while the store is unreachable")
    retry_delay_s: float = Field(DEFAULT_RETRY_DELAY_S, ge=0)


class RetrainPlan(BaseModel):
    """The retrain's inputs, resolved and checked."""

    preset: str
    overrides: list[str]
    workers: int
    tune: TuneRequest | None
    dataset: str
    model_name: str
    store_url: str
    repo_dir: Path
    run_dir: Path
    eval_modes: list[str] | None
    where: Infrastructure
    publishing: PublishOptions
    rehearse: bool = False
    reproduces: str | None = Field(None, description="NAME:V this run reproduces (recorded in its manifest)")
    budget_overrides: list[str] = Field(default_factory=list, description="a rehearsal's budget, before overrides")
    timestamps: dict[str, str] = Field(default_factory=dict)

    @property
    def training_overrides(self) -> list[str]:
        """What training gets: the rehearsal budget (if any), then the user's overrides, which win."""
        return [*self.budget_overrides, *self.overrides]


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def check_infrastructure(where: Infrastructure, repo: Path) -> None:
    """Ray address, Ray storage and DVC remote: well formed and known (the remote in `dvc remote list`)."""
    if where.ray_address and not RAY_ADDRESS.match(where.ray_address):
        raise UsageError(f"ray_address {where.ray_address!r}: expected host:port, ray://host:port or auto")
    if where.ray_jobs_url and not re.match(r"^https?://[A-Za-z0-9_.\-]+(:\d{1,5})?/?$", where.ray_jobs_url):
        raise UsageError(f"ray_jobs_url {where.ray_jobs_url!r}: expected http(s)://host:port (the Ray dashboard)")
    if where.ray_storage and where.ray_storage.startswith("s3"):
        parse_s3_url(where.ray_storage)
    elif where.ray_storage and "://" in where.ray_storage:
        raise UsageError(f"ray_storage {where.ray_storage!r}: expected a folder or s3://bucket/prefix")
    if where.dvc_remote:
        try:
            known = remote_names(repo)
        except DvcError as error:
            raise UsageError(f"dvc_remote {where.dvc_remote!r}: cannot list the project's remotes: {error}") from None
        if where.dvc_remote not in known:
            raise UsageError(
                f"dvc_remote {where.dvc_remote!r} is not configured in {repo} (known: {known or 'none'}); "
                "add it with `dvc remote add`"
            )


def check_training(config: TRMConfig, preset: str, workers: int, tune: TuneRequest | None) -> None:
    """Workers and the batch split (per trial for a search), and the search space when tuning."""
    if workers < 1:
        raise UsageError(f"workers={workers}: at least 1 Ray worker is needed")
    check_batch_split(config, workers)
    if tune is not None:
        try:
            space = resolve_space(tune.space, preset, tune.trials)
        except FileNotFoundError as error:
            raise UsageError(f"tune: {error}") from None
        check_batch_split(config, space.search.workers_per_trial)


def check_rehearsal(tune: TuneRequest | None, publishing: PublishOptions) -> None:
    """A rehearsal trains once and publishes a model nobody should deploy: no search, no aliases."""
    if tune is not None:
        raise UsageError("rehearse: a rehearsal runs one training, not a search; drop tune")
    if publishing.aliases:
        raise UsageError(f"rehearse: a rehearsal publishes no aliases (got {publishing.aliases}); drop them")


def check_publishing(store_url: str, model_name: str, options: PublishOptions) -> None:
    """The store URL parses (nothing is contacted yet), the model name and the aliases are valid."""
    check_name(model_name)
    for alias in options.aliases:
        check_alias(alias)
    try:
        open_store(store_url)
    except StoreError as error:
        raise UsageError(f"store_url: {error}") from None


def plan_retrain(
    preset: str,
    dataset: str | None,
    overrides: list[str] | None,
    workers: int,
    tune: TuneRequest | None,
    store_url: str | None,
    model_name: str | None,
    eval_modes: list[str] | None,
    infrastructure: Infrastructure | None,
    publishing: PublishOptions | None,
    run_id: str,
    rehearse: bool = False,
    reproduces: str | None = None,
) -> RetrainPlan:
    """Every parameter checked and every default resolved; raises ``UsageError`` naming the first wrong one."""
    where, publishing = infrastructure or Infrastructure(), publishing or PublishOptions()
    repo = project_dir(where.repo_dir)
    stages = stage_names(repo)
    if dataset is not None and dataset not in stages:
        raise UsageError(f"dataset {dataset!r} has no DVC stage in {repo / 'dvc.yaml'}; stages: {', '.join(stages)}")
    user_overrides = [*(overrides or []), *([f"data.name={dataset}"] if dataset else [])]
    config = load_config(preset, user_overrides)
    if config.data.name not in stages:
        raise UsageError(
            f"preset {preset!r} trains on {config.data.name!r}, which has no DVC stage in "
            f"{repo / 'dvc.yaml'}; pass dataset=<stage> (stages: {', '.join(stages)})"
        )
    check_training(config, preset, workers, tune)
    if eval_modes is not None and (not eval_modes or set(eval_modes) - set(MODES)):
        raise UsageError(f"eval_modes {eval_modes}: expected a non-empty subset of {list(MODES)}")
    if rehearse:
        check_rehearsal(tune, publishing)
    name = model_name or config.run.name
    if rehearse and not name.endswith("-rehearsal"):  # never under the name production aliases point into
        name = f"{name}-rehearsal"
    store = store_url or os.environ.get("TRM_STORE") or str(repo / "artifacts")
    check_publishing(store, name, publishing)
    check_infrastructure(where, repo)
    return RetrainPlan(
        preset=preset,
        overrides=user_overrides,
        workers=workers,
        tune=tune,
        dataset=config.data.name,
        model_name=name,
        store_url=store,
        repo_dir=repo,
        run_dir=repo / "runs" / f"{name}-{run_id}",
        eval_modes=eval_modes,
        where=where,
        publishing=publishing,
        rehearse=rehearse,
        reproduces=reproduces,
        timestamps={"started": now()},
    )
