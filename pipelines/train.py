"""Flow `train`: one Ray Train run, then the export (``model.safetensors`` + ``config.json``) that evaluation and
the store load, beside the run's ``metrics.jsonl``.

With a ``job_key`` (what the retrain flow passes) training is a Ray job (trm/distributed/job.py) on a cluster, or on
the local head that outlives this process (trm/distributed/head.py): a killed flow leaves it running, and the next
flow run with the same key re-attaches to it, takes its result, or resumes it from its last checkpoint. Without
one, training runs in this process on a local Ray started for it (or the cluster at ``ray_address``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Annotated, Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, Field

from pipelines.retries import retry_if_transient
from trm.atomic import atomic_write_text
from trm.config import TRMConfig, load_config
from trm.distributed.head import ensure_local_head
from trm.distributed.job import TrainJobs, TrainJobSpec, reusable
from trm.distributed.train_job import RayScaling, RayTrainResult, fetch_checkpoint, run_ray_training
from trm.train.export import export_model, find_checkpoint_folder, load_exported


class TrainOutcome(BaseModel):
    """Where a finished training run left its outputs (all local paths except ``storage``)."""

    run_name: str
    run_dir: str
    export_dir: str
    metrics_log: str | None
    storage: str
    checkpoint: str
    restored: bool = False
    metrics: dict[str, Any] = Field(default_factory=dict)
    selection: dict[str, Any] | None = None  # the step handed on and its validation metrics
    config: dict[str, Any] = Field(default_factory=dict)


def resolve_config(preset: str, overrides: list[str], data_root: Path, run_dir: Path) -> TRMConfig:
    """The preset with the user's overrides, then the data root and run folder this flow run owns (set last, so
    the dataset is the one DVC just built and the outputs land in this run's folder)."""
    pinned = [f"data.root={data_root}", f"run.output_dir={run_dir.parent}", f"run.name={run_dir.name}"]
    return load_config(preset, [*overrides, *pinned])


def export_checkpoint(checkpoint: Path, export_dir: Path) -> Path:
    """Write the export folder from a training checkpoint (its EMA weights) with trm's own loader/exporter."""
    model, config = load_exported(find_checkpoint_folder(checkpoint))
    return export_model(model, config, export_dir)


def write_reported_metrics(reports: list[dict[str, Any]], path: Path) -> Path | None:
    """A metrics.jsonl for the model card from reports Ray kept, for when the run folder of rank 0 is not on this
    machine (a multi-node cluster without a shared run folder)."""
    by_step = {int(r["step"]): {"kind": "eval", **r} for r in reports if "step" in r}
    if not by_step:
        return None
    lines = [json.dumps(by_step[step], sort_keys=True, default=str) + "\n" for step in sorted(by_step)]
    return atomic_write_text(path, "".join(lines))


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[10, 60], retry_condition_fn=retry_if_transient)
def ray_train(config: TRMConfig, address: str | None, workers: int, storage: str, name: str) -> RayTrainResult:
    """The Ray Train job. A retry re-uses the same run name and storage, so it resumes from the latest
    checkpoint instead of starting over (cluster hiccups cost minutes, not the run)."""
    get_run_logger().info(
        "Ray training %s: %d worker(s), address %s, storage %s", name, workers, address or "local", storage
    )
    return run_ray_training(config, address=address, scaling=RayScaling(workers=workers), storage=storage, name=name)


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[10, 60], retry_condition_fn=retry_if_transient)
def ray_train_job(
    config: TRMConfig, jobs_url: str | None, workers: int, storage: str, name: str, job_key: str, workdir: str
) -> RayTrainResult:
    """Training as the Ray job ``job_key``: re-attach to a running attempt, take a finished one's result, or submit
    the next attempt (which resumes from the run's last checkpoint). A retry of this task does the same."""
    log = get_run_logger()
    jobs = TrainJobs(jobs_url) if jobs_url else TrainJobs(ensure_local_head().dashboard_url)
    attempts = jobs.attempts(job_key)
    latest = attempts[-1] if attempts else None
    if latest is not None and reusable(latest):
        submission = str(latest.submission_id)
        log.info("Ray job %s is %s (started earlier): re-attaching to it", submission, latest.status)
    else:
        spec = TrainJobSpec(
            config=config.model_dump(mode="json"), scaling=RayScaling(workers=workers), storage=storage, name=name
        )
        submission = jobs.submit(job_key, spec, workdir=None if jobs_url else workdir, attempt=len(attempts))
        resumed = " (resumes from the last checkpoint of the earlier attempts)" if attempts else ""
        log.info(
            "submitted Ray job %s to %s: %d worker(s), storage %s%s",
            submission,
            jobs.address,
            workers,
            storage,
            resumed,
        )
    return jobs.wait(submission, say=lambda line: log.info("[%s] %s", submission, line))


@task(cache_policy=NO_CACHE)
def export_run(result: RayTrainResult, run_dir: Path) -> TrainOutcome:
    """Export the run's selected checkpoint (best validation score, or the last with ``eval.select: last``;
    downloaded first when the storage is S3) and collect what publishing needs."""
    uri = result.selected_checkpoint
    if not uri:
        raise FileNotFoundError(f"Ray run {result.name!r} in {result.storage_uri} reported no checkpoint")
    for derived in ("best-checkpoint", "export"):  # left by an earlier flow run of the same job: made again
        shutil.rmtree(run_dir / derived, ignore_errors=True)
    export_dir = export_checkpoint(fetch_checkpoint(uri, run_dir / "best-checkpoint"), run_dir / "export")
    metrics_log: Path | None = run_dir / "metrics.jsonl"
    if not (run_dir / "metrics.jsonl").is_file():
        metrics_log = write_reported_metrics([result.best_metrics, result.metrics], run_dir / "metrics.jsonl")
    return TrainOutcome(
        run_name=result.name,
        run_dir=str(run_dir),
        export_dir=str(export_dir),
        metrics_log=str(metrics_log) if metrics_log else None,
        storage=result.storage_uri,
        checkpoint=uri,
        restored=result.restored,
        metrics={k: v for k, v in result.metrics.items() if isinstance(v, (int, float, str, bool))},
        selection=result.selection.model_dump(mode="json") if result.selection else None,
        config=json.loads((export_dir / "config.json").read_text()),
    )


@flow(name="train", log_prints=True)
def train(
    preset: str,
    data_root: str,
    run_dir: str,
    overrides: list[str] | None = None,
    ray_address: str | None = None,
    workers: Annotated[int, Field(ge=1)] = 2,
    ray_storage: str | None = None,
    run_name: str | None = None,
    job_key: str | None = None,
    repo_dir: str | None = None,
    ray_jobs_url: str | None = None,
) -> TrainOutcome:
    """Train ``preset`` (+ ``overrides``) on Ray with ``workers`` workers; checkpoints go to ``ray_storage``
    (a folder or s3://bucket/prefix; default ``<run_dir>/ray``). With ``job_key``, as that Ray job: on the
    cluster whose Jobs API is ``ray_jobs_url``, else on the local head (run from ``repo_dir``). Returns the export
    and the run's facts."""
    run_path = Path(run_dir).resolve()
    config = resolve_config(preset, list(overrides or []), Path(data_root), run_path)
    storage, name = ray_storage or str(run_path / "ray"), run_name or run_path.name
    if job_key is None:
        result = ray_train(config, ray_address, workers, storage, name)
    else:
        result = ray_train_job(config, ray_jobs_url, workers, storage, name, job_key, repo_dir or str(Path.cwd()))
    return export_run(result, run_path)
