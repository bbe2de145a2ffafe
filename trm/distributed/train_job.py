"""A Ray Train (V2) job around our ``Trainer``: N workers, the torch process group Ray sets up, checkpoints and
results in a local folder or S3, automatic restore after a worker failure and resume of a stopped run.

Why the per-worker loop is thin: the step, the sampler's per-rank slice, the evaluation and the checkpoint
format all live in ``trm.train`` / ``trm.evaluate``; this file only wires them to Ray (context, report,
checkpoint hand-off). Every report carries a checkpoint written by rank 0 (our folder format: state.safetensors +
state.json), so ``load_exported`` / ``load_trainer`` read a Ray checkpoint directly.

Resume: Ray Train V2 keeps a checkpoint-manager snapshot under ``storage/name``. A new ``fit`` with the same name
and storage finds it and hands the latest checkpoint to the workers (``ray.train.get_checkpoint``), exactly as
after a worker failure; the loop then restores the full trainer state and continues.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from trm.config import TRMConfig
from trm.distributed.storage import S3Settings, Storage, resolve_storage

SCORE_METRIC = "eval_exact_accuracy"  # what "best" means for checkpoints and trials
# What Tune's ASHA ranks: eval exact accuracy, with token accuracy only breaking ties. Early in a run every trial is
# often at 0 exact accuracy, where ASHA could not tell them apart; the tie-break weight is too small to outrank one
# more exactly solved puzzle in a test split of fewer than 1000 puzzles.
TUNE_SCORE = "eval_score"
TIE_BREAK_WEIGHT = 1e-3
RAY_META_KEY = "ray"  # extra section in state.json: restore count across attempts


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


@dataclass
class RayTrainResult:
    """What a Ray training run produced; JSON-ready via ``to_json`` (the Prefect flows record it)."""

    name: str
    storage_uri: str
    run_uri: str
    steps: int
    total_steps: int
    seconds: float
    best_checkpoint: str | None
    latest_checkpoint: str | None
    checkpoints: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    best_metrics: dict[str, Any] = field(default_factory=dict)
    restored: bool = False  # the final attempt started from a checkpoint (failure restore or resume)
    restores: int = 0  # how many attempts of this run started from a checkpoint, over all fits
    restored_from_step: int | None = None
    workers: int = 1

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------------------- the worker loop
def _write_worker_info(folder: str | None, info: dict[str, Any]) -> None:
    """Debug/ops aid: each worker records pid and node so operators (and tests) can find and signal it."""
    if not folder:
        return
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    tmp = target / f".rank{info['rank']}.json.tmp"
    tmp.write_text(json.dumps(info))
    tmp.replace(target / f"rank{info['rank']}.json")


def _eval_metrics(evals: dict[str, dict[str, Any]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for index, (mode, summary) in enumerate(evals.items()):
        for key in ("exact_accuracy", "accuracy", "q_halt_accuracy", "steps", "puzzles_per_second"):
            if key in summary:
                out[f"eval_{mode}_{key}"] = float(summary[key])
                if index == 0:
                    out[f"eval_{key}"] = float(summary[key])
    if "eval_exact_accuracy" in out:
        out[TUNE_SCORE] = out["eval_exact_accuracy"] + TIE_BREAK_WEIGHT * out.get("eval_accuracy", 0.0)
    return out


def _worker_device(use_gpu: bool):
    import torch

    if not use_gpu:
        return torch.device("cpu")
    import ray.train.torch

    return ray.train.torch.get_device()


def train_loop_per_worker(loop_config: dict[str, Any]) -> dict[str, Any]:
    """Runs in every Ray Train worker: build the Trainer on Ray's process group, restore, step, evaluate, report."""
    import ray.train
    import torch
    import torch.distributed as dist

    from trm.data.loader import PuzzleDataset
    from trm.train.checkpoint import load_trainer, write_checkpoint
    from trm.train.loop import ensure_dataset, run_evaluation
    from trm.train.metrics_log import MetricsLog
    from trm.train.trainer import Trainer

    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    torch.set_num_threads(int(loop_config["threads"]))
    config = TRMConfig.model_validate(loop_config["config"])
    group = dist.group.WORLD if world > 1 and dist.is_initialized() else None
    device = _worker_device(loop_config["use_gpu"])
    _write_worker_info(loop_config.get("worker_info_dir"), {
        "rank": rank, "world_size": world, "pid": os.getpid(), "hostname": socket.gethostname(),
        "node_id": ray.get_runtime_context().get_node_id(), "threads": torch.get_num_threads(),
        "device": str(device), "started": time.time(),
    })

    # Each node's first worker builds a missing dataset (a registered name); the others wait for it.
    if context.get_local_rank() == 0 and not (config.data.resolve_path() / "metadata.json").is_file():
        ensure_dataset(config)
    if group is not None:
        dist.barrier(group=group)
    data_path = config.data.resolve_path()
    train_ds = PuzzleDataset.open(data_path, "train")
    eval_ds = PuzzleDataset.open(data_path, config.eval.split)
    trainer = Trainer(config, train_ds, process_group=group, device=device)

    restores, restored_from = 0, None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            meta = load_trainer(trainer, Path(folder))
        restores = int(meta.get(RAY_META_KEY, {}).get("restores", 0)) + 1
        restored_from = trainer.step_count

    # The per-step curve (Ray itself keeps only the reports made at evaluations): rank 0 writes the same
    # metrics.jsonl as a single-process run into run.path(); on a multi-node cluster that folder must be shared.
    log = MetricsLog(config.run.path() / "metrics.jsonl", enabled=rank == 0)
    if restored_from is not None:
        log.truncate_after(restored_from)
    elif rank == 0 and log.path.exists():
        log.path.unlink()  # a fresh run replaces an old log instead of appending to it

    t = config.train
    steps_per_epoch = trainer.steps_per_epoch
    every = t.eval_interval or t.checkpoint_interval
    report_every = max(1, round(every * steps_per_epoch if t.interval_unit == "epochs" else every)) if every else None
    eval_model = trainer.ema_model()
    global_batch = t.global_batch_size

    def report(step_metrics: dict[str, float], window_seconds: float, window_steps: int, save: bool) -> dict:
        evals = run_evaluation(trainer, eval_model, eval_ds)  # collective: every rank evaluates its share
        for mode, summary in evals.items():
            log.write("eval", trainer.step_count, {"mode": mode, **summary})
        metrics: dict[str, Any] = {f"train_{k}": float(v) for k, v in step_metrics.items()}
        metrics.update(_eval_metrics(evals))
        metrics.update({
            "step": trainer.step_count, "total_steps": trainer.total_steps,
            "loss": float(step_metrics.get("lm_loss", 0.0) + step_metrics.get("q_halt_loss", 0.0)),
            "lr": float(step_metrics.get("lr", 0.0)),
            "steps_per_second": window_steps / max(window_seconds, 1e-9),
            "samples_per_second": window_steps * global_batch / max(window_seconds, 1e-9),
            "restores": restores, "restored_from_step": -1 if restored_from is None else restored_from,
            "world_size": world,
        })
        if not save:
            ray.train.report(metrics)
            return metrics
        tensors, meta = trainer.state_dict()  # collective (carries are gathered)
        if rank != 0:
            ray.train.report(metrics)
            return metrics
        meta[RAY_META_KEY] = {"restores": restores, "workers": world}
        staging = Path(tempfile.mkdtemp(prefix="trm-ckpt-"))
        try:
            folder = write_checkpoint(staging / "checkpoint", tensors, meta)
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(str(folder)),
                             checkpoint_dir_name=f"checkpoint_step_{trainer.step_count:08d}")
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return metrics

    last: dict[str, Any] = {}
    reported = False
    window_start, window_steps = time.perf_counter(), 0
    step_metrics: dict[str, float] = {}
    while trainer.step_count < trainer.total_steps:
        step_metrics = trainer.step()
        window_steps += 1
        step = trainer.step_count
        if step % t.log_interval == 0 or step == trainer.total_steps:
            log.write("train", step, step_metrics)
        if (report_every and step % report_every == 0) or step == trainer.total_steps:
            last = report(step_metrics, time.perf_counter() - window_start, window_steps, save=True)
            reported = True
            window_start, window_steps = time.perf_counter(), 0
    if not reported:  # resumed a run that had already finished: report its final evaluation once more
        last = report(step_metrics, 1.0, 0, save=False)
    return {"steps": trainer.step_count, "total_steps": trainer.total_steps, "restores": restores,
            "restored_from_step": restored_from, "metrics": last}


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
    callbacks: list | None = None,
    score_attribute: str = SCORE_METRIC,
):
    """A configured ``TorchTrainer`` (not started). Tune's trials call this too, adding TuneReportCallback and
    keeping checkpoints by the metric Tune ranks with (so the checkpoint Tune calls best is never deleted)."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    resources = {"CPU": scaling.cpus_per_worker}
    if use_gpu:
        resources["GPU"] = scaling.gpus_per_worker
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
            checkpoint_config=CheckpointConfig(num_to_keep=keep_best, checkpoint_score_attribute=score_attribute,
                                               checkpoint_score_order="max"),
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


def run_ray_training(
    config: TRMConfig,
    *,
    address: str | None = None,
    workers: int = 1,
    storage: str | Path | None = None,
    s3: S3Settings | None = None,
    name: str | None = None,
    cpus_per_worker: float = 1.0,
    threads_per_worker: int | None = None,
    use_gpu: bool | None = None,
    max_failures: int = 2,
    keep_best: int = 2,
    worker_info_dir: str | Path | None = None,
) -> RayTrainResult:
    """Train ``config`` on Ray (a cluster at ``address``, or a local Ray started for this call). Checkpoints and
    results go to ``storage/name`` (a folder or ``s3://bucket/prefix``); calling again with the same name and
    storage resumes from the latest checkpoint. Returns where the best checkpoint is and the last metrics."""
    from trm.distributed.cluster import connect

    started = time.perf_counter()
    # workers run in Ray's own working directory: make the run folder (metrics.jsonl) absolute on the driver
    run_dir = str(Path(config.run.output_dir).expanduser().resolve())
    config = config.model_copy(update={"run": config.run.model_copy(update={"output_dir": run_dir})})
    scaling = RayScaling(workers=workers, use_gpu=use_gpu, cpus_per_worker=cpus_per_worker,
                         threads_per_worker=threads_per_worker)
    target = resolve_storage(storage, s3)
    run_name = name or config.run.name
    session = connect(address)
    try:
        if session.started_here:
            from trm.train.loop import ensure_dataset

            ensure_dataset(config)  # one build on this machine before the workers start
        gpu = resolve_use_gpu(scaling, session.gpus)
        trainer = build_torch_trainer(config, scaling=scaling, storage=target, name=run_name, use_gpu=gpu,
                                      max_failures=max_failures, keep_best=keep_best,
                                      worker_info_dir=str(worker_info_dir) if worker_info_dir else None)
        result = trainer.fit()
    finally:
        session.close()
    return summarize_result(result, target, run_name, scaling.workers, time.perf_counter() - started)


def summarize_result(result, storage: Storage, name: str, workers: int, seconds: float) -> RayTrainResult:
    """Turn a Ray ``Result`` into our JSON-ready record (best = highest eval exact accuracy, latest on ties)."""
    returned = result.return_value or {}
    metrics = dict(result.metrics or {})
    kept = list(result.best_checkpoints or [])
    best = None
    if kept:
        best = max(kept, key=lambda item: (item[1].get(SCORE_METRIC, float("-inf")), item[1].get("step", 0)))
    restored_from = returned.get("restored_from_step")
    if restored_from is None and metrics.get("restored_from_step", -1) >= 0:
        restored_from = int(metrics["restored_from_step"])
    return RayTrainResult(
        name=name,
        storage_uri=storage.uri,
        run_uri=storage.uri_of(name),
        steps=int(returned.get("steps", metrics.get("step", 0))),
        total_steps=int(returned.get("total_steps", metrics.get("total_steps", 0))),
        seconds=seconds,
        best_checkpoint=checkpoint_uri(storage, best[0].path) if best else None,
        latest_checkpoint=checkpoint_uri(storage, result.checkpoint.path) if result.checkpoint else None,
        checkpoints=sorted(checkpoint_uri(storage, c.path) for c, _ in kept),
        metrics=metrics,
        best_metrics=dict(best[1]) if best else {},
        restored=restored_from is not None,
        restores=int(returned.get("restores", metrics.get("restores", 0))),
        restored_from_step=restored_from,
        workers=workers,
    )


def fetch_checkpoint(uri: str, destination: Path, s3: S3Settings | None = None) -> Path:
    """A local folder holding the checkpoint at ``uri`` (downloaded from S3 when remote; local paths as is)."""
    if not uri.startswith("s3://"):
        return Path(uri)
    storage = resolve_storage(uri, s3)
    return storage.download(uri, Path(destination))
