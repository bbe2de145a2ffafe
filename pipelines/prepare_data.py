"""Flow `prepare_data`: build a dataset through its DVC stage, so the data a model saw is named by a hash.

`dvc repro <stage>` runs the stage only when its code, raw inputs or params changed (a second run is a no-op and
says so); with a DVC remote, cached outputs are pulled first (another machine may have built them) and pushed
after. DVC runs as `python -m dvc` in a child process: its Python API resolves targets against the process's
current directory, which a flow must not change.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

import yaml
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff
from pydantic import BaseModel

from pipelines.project import project_dir, run_tool
from pipelines.retries import retry_if_transient
from trm.store.lineage import read_dvc_lock

DVC_TIMEOUT_S = 3 * 3600.0  # a paper-size ARC build takes minutes; a hung remote must not block a worker forever
_RAN = re.compile(r"Running stage '([^']+)'")


# DVC's own words for failures a retry may fix (network, throttling, server errors)
_TRANSIENT = re.compile(
    r"connection|timed? ?out|temporar|throttl|slow ?down|reset by peer|unreachable|\b50[0234]\b", re.IGNORECASE
)


class DvcError(RuntimeError):
    """A DVC command failed; the message carries the command, the project and DVC's own last lines."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class PreparedData(BaseModel):
    """What the data step produced: where the dataset is and the DVC hash that identifies its bytes."""

    dataset: str
    stage: str
    repo_dir: str
    data_dir: str
    dvc_lock: str
    md5: str
    stages_ran: list[str]
    remote: str | None = None
    pulled: bool = False
    pushed: bool = False

    @property
    def was_rebuilt(self) -> bool:
        return bool(self.stages_ran)


def dvc(repo: Path, *args: str, timeout: float = DVC_TIMEOUT_S) -> str:
    """Run one DVC command in ``repo``; raise DvcError with DVC's own error line when it fails (the whole tail of its
    output goes to the log)."""
    command = f"dvc {' '.join(args)}"
    try:
        result = run_tool([sys.executable, "-m", "dvc", *args], cwd=repo, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise DvcError(f"`{command}` in {repo} did not finish within {timeout:.0f} s", transient=True) from None
    if result.returncode != 0:
        tail = result.tail()
        logging.getLogger(__name__).warning("`%s` failed in %s:\n%s", command, repo, tail)
        errors = [line for line in tail.splitlines() if line.strip().startswith("ERROR")] or tail.splitlines() or [""]
        raise DvcError(
            f"`{command}` failed in {repo} (exit {result.returncode}): {errors[-1].strip()}",
            transient=bool(_TRANSIENT.search(tail)),
        )
    return result.output


def stage_names(repo: Path) -> list[str]:
    """The stages declared in ``repo/dvc.yaml``."""
    path = repo / "dvc.yaml"
    try:
        stages = (yaml.safe_load(path.read_text()) or {}).get("stages") or {}
    except yaml.YAMLError as error:
        raise DvcError(f"{path}: not valid YAML: {error}") from error
    return list(stages)


def remote_names(repo: Path) -> list[str]:
    """The DVC remotes configured in ``repo`` (`dvc remote list`)."""
    output = dvc(repo, "remote", "list", timeout=120)
    return [line.split()[0] for line in output.splitlines() if line.strip() and not line.startswith(" ")]


def default_remote(repo: Path) -> str | None:
    """The project's default DVC remote name, or None when none is configured."""
    result = run_tool([sys.executable, "-m", "dvc", "remote", "default"], cwd=repo, timeout=120)
    lines = result.output.strip().splitlines()
    if result.returncode != 0 or not lines:  # "No default remote set" exits 1
        return None
    name = lines[-1].strip()
    return name if name and " " not in name else None


@task(
    cache_policy=NO_CACHE,
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=5),
    retry_jitter_factor=0.5,
    retry_condition_fn=retry_if_transient,
)
def dvc_pull(repo: Path, stage: str, remote: str) -> None:
    """Fetch the stage's cached outputs if the remote has them (network: retried with backoff)."""
    dvc(repo, "pull", stage, "--remote", remote, "--allow-missing")


@task(cache_policy=NO_CACHE)
def dvc_repro(repo: Path, stage: str) -> list[str]:
    """`dvc repro <stage>`; returns the stages that actually ran (empty = everything was up to date)."""
    output = dvc(repo, "repro", stage)
    ran = _RAN.findall(output)
    get_run_logger().info("dvc repro %s: %s", stage, f"ran {ran}" if ran else "nothing changed, no stage ran")
    return ran


@task(
    cache_policy=NO_CACHE,
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=5),
    retry_jitter_factor=0.5,
    retry_condition_fn=retry_if_transient,
)
def dvc_push(repo: Path, stage: str, remote: str) -> None:
    """Upload the stage's outputs to the remote (network: retried with backoff)."""
    dvc(repo, "push", stage, "--remote", remote)


@flow(name="prepare-data", log_prints=True)
def prepare_data(dataset: str, remote: str | None = None, repo_dir: str | None = None) -> PreparedData:
    """Build ``dataset`` (= its DVC stage and its folder under data/) in the project checkout; pull before and push
    after when ``remote`` is given or the project has a default DVC remote."""
    repo = project_dir(repo_dir)
    stages = stage_names(repo)
    if dataset not in stages:
        raise DvcError(f"dataset {dataset!r} has no DVC stage in {repo / 'dvc.yaml'}; stages: {', '.join(stages)}")
    remote = remote or default_remote(repo)
    if remote:
        dvc_pull(repo, dataset, remote)
    ran = dvc_repro(repo, dataset)
    if remote:
        dvc_push(repo, dataset, remote)
    lineage = read_dvc_lock(repo / "dvc.lock", dataset)
    out = next((o for o in lineage.outs if o.md5), None)
    if out is None:
        raise DvcError(f"{repo / 'dvc.lock'}: stage {dataset!r} records no output hash")
    data_dir = repo / out.path
    if not (data_dir / "metadata.json").is_file():
        raise DvcError(f"{data_dir}: dvc repro {dataset} finished but the folder holds no metadata.json")
    return PreparedData(
        dataset=dataset,
        stage=dataset,
        repo_dir=str(repo),
        data_dir=str(data_dir),
        dvc_lock=str(repo / "dvc.lock"),
        md5=out.md5,
        stages_ran=ran,
        remote=remote,
        pulled=bool(remote),
        pushed=bool(remote),
    )
