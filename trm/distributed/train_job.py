"""A Ray Train (V2) job around the one training loop: N workers on the torch process group Ray sets up,
checkpoints and results in a local folder or S3, restore after a worker failure and resume of a stopped run.

Each worker runs ``trm.train.loop.train`` with two Ray-specific hooks: checkpoints and reports go through
``ray.train.report`` (our checkpoint folder format inside a Ray checkpoint, so ``load_exported`` reads it directly),
and the restore point is ``ray.train.get_checkpoint()``. A new ``fit`` with the same name and storage finds Ray's
snapshot of the run and hands its latest checkpoint to the workers, exactly as after a worker failure.
"""

from __future__ import annotations

import math
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import ray
import ray.train
import ray.train.torch
import torch
import torch.distributed as dist
from pydantic import BaseModel, ConfigDict, Field
from ray.train import Checkpoint, CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from trm.atomic import atomic_write_json
from trm.config import TRMConfig
from trm.data.build import ensure_built
from trm.distributed.capacity import Demand, ensure_capacity, wait_for_capacity
from trm.distributed.cluster import connect
from trm.distributed.storage import Storage, resolve_storage
from trm.errors import UsageError
from trm.evaluate.training import TrainingEvaluator
from trm.s3 import S3Settings
from trm.train.checkpoint import load_trainer, write_checkpoint
from trm.train.hooks import EvalSummaries, Report
from trm.train.loop import LoopHooks, train
from trm.train.selection import TIMING_KEYS, Selection, checkpoint_score, score_of
from trm.train.trainer import Trainer

SCORE_METRIC = "eval_exact_accuracy"  # the headline validation metric of a report
# What Ray keeps and ranks checkpoints by: the validation `eval.metric` of the checkpoint's own step; NaN for a
# checkpoint saved between evaluations (trm.train.selection.checkpoint_score), so a stale score never wins.
CHECKPOINT_SCORE = "checkpoint_score"
# The Ray checkpoint score of a checkpoint saved between evaluations: below every real score (those are >= 0) and
# finite. NaN would be written as null into Ray's JSON snapshot of the run, and resuming the run then fails while
# ranking its checkpoints ("unsupported operand type(s) for *: 'float' and 'NoneType'").
UNSCORED = -1.0
# What Tune's ASHA ranks: validation exact accuracy, token accuracy breaking ties (trm.train.selection.score_of).
TUNE_SCORE = "eval_score"
RAY_META_KEY = "ray"  # extra section in state.json: restore count across attempts
EVAL_KEYS = ("exact_accuracy", "accuracy", "q_halt_accuracy", "steps", "puzzles_per_second")


class RayScaling(BaseModel):
    """How many workers and what each one gets. On CPU each worker runs ``threads_per_worker`` torch threads
    (default: its CPU share), so N workers on N cores do not oversubscribe."""

    model_config = ConfigDict(extra="forbid")

    workers: int = Field(1, gt=0)
    use_gpu: bool | None = Field(None, description="None = use GPUs when the cluster has one per worker")
    cpus_per_worker: float = Field(1.0, gt=0)
    gpus_per_worker: float = Field(1.0, gt=0)
    threads_per_worker: int | None = Field(None, gt=0)

    def threads(self) -> int:
        return self.threads_per_worker or max(1, int(self.cpus_per_worker))

    def demand(self, extra_cpus: float = 0.0) -> Demand:
        """What the cluster must offer at once (GPUs only when asked for: None means "when there are some")."""
        gpus = self.gpus_per_worker if self.use_gpu else 0.0
        return Demand(self.workers, self.cpus_per_worker, gpus, extra_cpus)


def check_batch_split(config: TRMConfig, workers: int) -> None:
    """The global batch must split evenly over workers and micro-batches (checked before anything starts)."""
    shards = workers * config.train.grad_accum_steps
    if config.train.global_batch_size % shards:
        raise UsageError(
            f"train.global_batch_size={config.train.global_batch_size} does not split over {workers} "
            f"worker(s) x train.grad_accum_steps={config.train.grad_accum_steps}: use a multiple of "
            f"{shards}"
        )


class RayTrainResult(BaseModel):
    """What a Ray training run produced (the Prefect flows record it as JSON)."""

    name: str
    storage_uri: str
    run_uri: str
    steps: int
    total_steps: int
    seconds: float
    best_checkpoint: str | None
    latest_checkpoint: str | None
    checkpoints: list[str] = Field(default_factory=list)
    metrics: dict[str, Any] = Field(default_factory=dict)  # the last report
    best_metrics: dict[str, Any] = Field(default_factory=dict)  # the report of the best checkpoint
    restored: bool = False  # the final attempt started from a checkpoint (failure restore or resume)
    restores: int = 0  # how many attempts of this run started from a checkpoint, over all fits
    restored_from_step: int | None = None
    workers: int = 1
    selection: Selection | None = None  # rank 0's record of the selected step (validation split)

    @property
    def selected_checkpoint(self) -> str | None:
        """The checkpoint to hand on: the best validation step's, or the last one with ``eval.select: last``."""
        if self.selection is not None and self.selection.rule == "last":
            return self.latest_checkpoint
        return self.best_checkpoint or self.latest_checkpoint


# ---------------------------------------------------------------------------------------------- the worker side
def eval_metrics(evals: EvalSummaries) -> dict[str, float]:
    """Flat ``eval_*`` metrics of the first eval mode (and ``eval_<mode>_*`` of every mode) plus Tune's score.
    Before the first evaluation the score keys are NaN, which Ray ranks below every real score."""
    out: dict[str, float] = {SCORE_METRIC: math.nan, TUNE_SCORE: math.nan}
    for index, (mode, summary) in enumerate(evals.items()):
        for key in EVAL_KEYS:
            if key in summary:
                out[f"eval_{mode}_{key}"] = float(summary[key])
                if index == 0:
                    out[f"eval_{key}"] = float(summary[key])
    if evals:
        out[TUNE_SCORE] = score_of(evals, "exact_accuracy")
    return out


def ray_metrics(report: Report, restores: int, metric: str = "exact_accuracy") -> dict[str, Any]:
    """What one ``ray.train.report`` carries (Tune sees the same through TuneReportCallback); ``metric`` is the
    config's ``eval.metric``, the checkpoint score."""
    metrics: dict[str, Any] = {f"train_{k}": float(v) for k, v in report.train.items()}
    metrics.update(eval_metrics(report.evals))
    score = checkpoint_score(report, metric)
    metrics[CHECKPOINT_SCORE] = UNSCORED if math.isnan(score) else score
    metrics.update(
        {
            "step": report.step,
            "total_steps": report.total_steps,
            "eval_step": -1 if report.eval_step is None else report.eval_step,
            "loss": float(report.train.get("lm_loss", 0.0) + report.train.get("q_halt_loss", 0.0)),
            "lr": float(report.train.get("lr", 0.0)),
            "steps_per_second": report.steps_per_second,
            "samples_per_second": report.samples_per_second,
            "restores": restores,
            "world_size": report.world_size,
            "restored_from_step": -1 if report.restored_from_step is None else report.restored_from_step,
        }
    )
    return metrics


class RayCheckpoints:
    """The loop's checkpoint hook inside a Ray Train worker: restore from ``ray.train.get_checkpoint()``, report
    every checkpoint (rank 0 uploads it) and every evaluation to Ray."""

    def __init__(self, metric: str = "exact_accuracy") -> None:
        self.restores = 0
        self.metric = metric

    def restore(self, trainer: Trainer) -> int | None:
        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as folder:
            meta = load_trainer(trainer, Path(folder))
        self.restores = int(meta.get(RAY_META_KEY, {}).get("restores", 0)) + 1
        return trainer.step_count

    def save(self, trainer: Trainer, report: Report) -> str | None:
        tensors, meta = trainer.state_dict()  # collective: carries are gathered from every rank
        metrics = ray_metrics(report, self.restores, self.metric)
        if trainer.rank != 0:
            ray.train.report(metrics)
            return None
        meta[RAY_META_KEY] = {"restores": self.restores, "workers": trainer.world_size}
        name = f"checkpoint_step_{report.step:08d}"
        with tempfile.TemporaryDirectory(prefix="trm-ckpt-") as staging:
            folder = write_checkpoint(Path(staging) / "checkpoint", tensors, meta)
            ray.train.report(metrics, checkpoint=Checkpoint.from_directory(str(folder)), checkpoint_dir_name=name)
        return name

    def report(self, report: Report) -> None:
        ray.train.report(ray_metrics(report, self.restores, self.metric))


def _worker_device(use_gpu: bool) -> torch.device:
    return ray.train.torch.get_device() if use_gpu else torch.device("cpu")


def _record_worker(folder: str | None, info: dict[str, Any]) -> None:
    """Ops aid: each worker records its pid and node, so operators (and tests) can find and signal it."""
    if folder:
        atomic_write_json(Path(folder) / f"rank{info['rank']}.json", info)


def train_loop_per_worker(loop_config: dict[str, Any]) -> dict[str, Any]:
    """Runs in every Ray Train worker: the one training loop on Ray's process group with Ray's hooks."""
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    torch.set_num_threads(int(loop_config["threads"]))
    config = TRMConfig.model_validate(loop_config["config"])
    group = dist.group.WORLD if world > 1 and dist.is_initialized() else None
    device = _worker_device(loop_config["use_gpu"])
    _record_worker(
        loop_config.get("worker_info_dir"),
        {
            "rank": rank,
            "world_size": world,
            "pid": os.getpid(),
            "hostname": socket.gethostname(),
            "node_id": ray.get_runtime_context().get_node_id(),
            "threads": torch.get_num_threads(),
            "device": str(device),
            "started": time.time(),
        },
    )
    checkpoints = RayCheckpoints(config.eval.metric)
    # rank 0 keeps the per-step metrics.jsonl in run.path(); on a multi-node cluster that folder must be shared
    hooks = LoopHooks(checkpoints=checkpoints, evaluate=TrainingEvaluator.for_run(config))
    result = train(
        config,
        hooks=hooks,
        process_group=group,
        device=device,
        progress=False,
        export=False,
        builds_data=context.get_local_rank() == 0,
    )  # each node's first worker builds missing data
    return {
        "steps": result.steps,
        "total_steps": result.total_steps,
        "restores": checkpoints.restores,
        "restored_from_step": result.restored_from_step,
        "selection": result.selection.model_dump(mode="json") if result.selection else None,
    }


# ---------------------------------------------------------------------------------------------- the driver side
def build_torch_trainer(
    config: TRMConfig,
    *,
    scaling: RayScaling,
    storage: Storage,
    name: str,
    use_gpu: bool,
    max_failures: int = 2,
    keep_best: int = 2,
    worker_info_dir: str | None = None,
    callbacks: list[Any] | None = None,
    score_attribute: str = CHECKPOINT_SCORE,
) -> TorchTrainer:
    """A configured ``TorchTrainer`` (not started). Tune's trials call this too, adding TuneReportCallback and
    keeping checkpoints by the metric Tune ranks with (so the checkpoint Tune calls best is never deleted)."""
    resources = {"CPU": scaling.cpus_per_worker, **({"GPU": scaling.gpus_per_worker} if use_gpu else {})}
    loop_config = {
        "config": config.model_dump(mode="json"),
        "threads": scaling.threads(),
        "use_gpu": use_gpu,
        "worker_info_dir": worker_info_dir,
    }
    return TorchTrainer(
        train_loop_per_worker=train_loop_per_worker,
        train_loop_config=loop_config,
        scaling_config=ScalingConfig(num_workers=scaling.workers, use_gpu=use_gpu, resources_per_worker=resources),
        run_config=RunConfig(
            name=name,
            storage_path=storage.ray_path,
            storage_filesystem=storage.filesystem,
            checkpoint_config=CheckpointConfig(
                num_to_keep=keep_best, checkpoint_score_attribute=score_attribute, checkpoint_score_order="max"
            ),
            failure_config=FailureConfig(max_failures=max_failures),
            callbacks=callbacks,
            worker_runtime_env={"env_vars": {"OMP_NUM_THREADS": str(scaling.threads())}},
        ),
    )


def resolve_use_gpu(scaling: RayScaling, cluster_gpus: float) -> bool:
    """Explicit setting wins; otherwise GPUs are used only when the cluster has enough for every worker."""
    if scaling.use_gpu is not None:
        return scaling.use_gpu
    return cluster_gpus >= scaling.workers * scaling.gpus_per_worker


def checkpoint_uri(storage: Storage, path: str) -> str:
    """A checkpoint's path inside the storage filesystem as a URI users can pass back (s3://... or a folder)."""
    return f"s3://{path.lstrip('/')}" if storage.is_remote else str(path)


def absolute_run_folder(config: TRMConfig) -> TRMConfig:
    """Workers run in Ray's own working directory: the run folder (metrics.jsonl) must be absolute."""
    run_dir = str(Path(config.run.output_dir).expanduser().resolve())
    return config.model_copy(update={"run": config.run.model_copy(update={"output_dir": run_dir})})


def run_ray_training(
    config: TRMConfig,
    *,
    address: str | None = None,
    scaling: RayScaling | None = None,
    workers: int = 1,
    storage: str | Path | None = None,
    s3: S3Settings | None = None,
    name: str | None = None,
    max_failures: int = 2,
    keep_best: int = 2,
    worker_info_dir: str | Path | None = None,
) -> RayTrainResult:
    """Train ``config`` on Ray (a cluster at ``address``, or a local Ray started for this call) with ``scaling``
    (default: ``workers`` workers of one CPU). Checkpoints and results go to ``storage/name`` (a folder or
    ``s3://bucket/prefix``); calling again with the same name and storage resumes from the latest checkpoint."""
    started = time.perf_counter()
    config = absolute_run_folder(config)
    scaling = scaling or RayScaling(workers=workers)
    target = resolve_storage(storage, s3)
    run_name = name or config.run.name
    demand = scaling.demand()
    check_batch_split(config, scaling.workers)
    ensure_capacity(demand, address)  # a local Ray that could never host the workers is not even started
    session = connect(address)
    try:
        if session.started_here:  # one build on this machine before the workers start
            ensure_built(config.data.resolve_path(), config.data.name)
        else:
            wait_for_capacity(demand, session.address)
        trainer = build_torch_trainer(
            config,
            scaling=scaling,
            storage=target,
            name=run_name,
            use_gpu=resolve_use_gpu(scaling, session.gpus),
            max_failures=max_failures,
            keep_best=keep_best,
            worker_info_dir=str(worker_info_dir) if worker_info_dir else None,
        )
        result = trainer.fit()
    finally:
        session.close()
    return summarize_result(result, target, run_name, scaling.workers, time.perf_counter() - started)


def summarize_result(
    result: ray.train.Result, storage: Storage, name: str, workers: int, seconds: float
) -> RayTrainResult:
    """Turn a Ray ``Result`` into our record (best = highest validation checkpoint score, the earlier step on
    ties, as trm.train.selection decides)."""
    returned = result.return_value or {}
    metrics = dict(result.metrics or {})
    kept = [item for item in result.best_checkpoints or [] if not math.isinf(_score(item[1]))]
    best = max(kept, key=lambda item: (_score(item[1]), -item[1].get("step", 0))) if kept else None
    selection = returned.get("selection")
    restored_from = returned.get("restored_from_step")
    return RayTrainResult(
        name=name,
        storage_uri=storage.uri,
        run_uri=storage.uri_of(name),
        steps=int(returned.get("steps") or metrics.get("step") or 0),
        total_steps=int(returned.get("total_steps") or metrics.get("total_steps") or 0),
        seconds=seconds,
        best_checkpoint=checkpoint_uri(storage, best[0].path) if best else None,
        latest_checkpoint=checkpoint_uri(storage, result.checkpoint.path) if result.checkpoint else None,
        checkpoints=sorted(checkpoint_uri(storage, c.path) for c, _ in result.best_checkpoints or []),
        metrics=metrics,
        best_metrics=dict(best[1]) if best else {},
        restored=restored_from is not None,
        restores=int(returned.get("restores") or metrics.get("restores") or 0),
        restored_from_step=restored_from,
        workers=workers,
        selection=Selection.model_validate(selection) if selection else None,
    )


def selection_from_report(report: dict[str, Any], config: TRMConfig, rule: str = "best") -> Selection:
    """The selection record of a checkpoint known only by its Ray report (a Tune trial's best checkpoint):
    its step and its ``eval_<mode>_<key>`` validation metrics."""
    prefixes = {f"eval_{mode}_": mode for mode in config.eval.modes}
    metrics = {
        f"{mode}/{key.removeprefix(prefix)}": float(value)
        for key, value in report.items()
        for prefix, mode in prefixes.items()
        if key.startswith(prefix)
        and isinstance(value, (int, float))
        and key.removeprefix(prefix) in EVAL_KEYS
        and key.removeprefix(prefix) not in TIMING_KEYS
    }
    label = f"{config.eval.modes[0]}/{config.eval.metric}" if config.eval.modes else config.eval.metric
    return Selection(
        rule="best" if rule == "best" else "last",
        split=config.eval.split,
        metric=label,
        step=int(report["step"]) if "step" in report else None,
        value=metrics.get(label),
        metrics=metrics,
        evaluations=0,
    )


def _score(metrics: dict[str, Any]) -> float:
    value = float(metrics.get(CHECKPOINT_SCORE, math.nan))
    return -math.inf if math.isnan(value) or value <= UNSCORED else value


def fetch_checkpoint(uri: str, destination: Path, s3: S3Settings | None = None) -> Path:
    """A local folder holding the checkpoint at ``uri`` (downloaded from S3 when remote; local paths as is)."""
    if not uri.startswith("s3://"):
        return Path(uri)
    return resolve_storage(uri, s3).download(uri, Path(destination))
