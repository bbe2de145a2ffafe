"""Flow `train`: one Ray Train job (local Ray started on demand, or a cluster address), then the export that
evaluation and the store load.

The training math lives in trm.train and the Ray wiring in trm.distributed; this module only resolves the
config, calls ``run_ray_training``, and turns its best checkpoint into an export folder
(``model.safetensors`` + ``config.json``) beside the run's ``metrics.jsonl``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from trm.config import TRMConfig, load_config


class TrainOutcome(BaseModel):
    """Where a finished training run left its outputs (all local paths except ``storage``)."""

    run_name: str
    run_dir: str
    export_dir: str
    metrics_log: str | None
    storage: str
    checkpoint: str
    restored: bool = False
    metrics: dict[str, Any] = {}
    config: dict[str, Any] = {}


def resolve_config(preset: str, overrides: list[str], data_root: Path, run_dir: Path) -> TRMConfig:
    """The preset with the user's overrides, then the data root and run folder this flow run owns (set last, so
    the dataset is the one DVC just built and the outputs land in this run's folder)."""
    pinned = [f"data.root={data_root}", f"run.output_dir={run_dir.parent}", f"run.name={run_dir.name}"]
    return load_config(preset, [*overrides, *pinned])


def find_checkpoint_folder(path: Path) -> Path:
    """The folder holding our checkpoint (state.safetensors) or an export (model.safetensors) at or below ``path``:
    a Ray checkpoint directory may wrap it in a sub-folder."""
    path = Path(path)
    for marker in ("model.safetensors", "state.safetensors"):
        if (path / marker).is_file():
            return path
    for marker in ("model.safetensors", "state.safetensors"):
        found = sorted(path.rglob(marker))
        if found:
            return found[0].parent
    raise FileNotFoundError(f"{path}: no model.safetensors or state.safetensors inside this checkpoint")


def export_checkpoint(checkpoint: Path, export_dir: Path) -> Path:
    """Write the export folder from a training checkpoint (its EMA weights) with trm's own loader/exporter."""
    from trm.train.export import export_model, load_exported

    model, config = load_exported(find_checkpoint_folder(checkpoint))
    return export_model(model, config, export_dir)


def write_metrics_log(history: list[dict[str, Any]], path: Path) -> Path | None:
    """A metrics.jsonl for the model card from the metrics Ray reported, when the job did not leave one itself."""
    if not history:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(json.dumps(record, sort_keys=True, default=str) + "\n" for record in history))
    tmp.replace(path)
    return path


def metrics_history(result: Any) -> list[dict[str, Any]]:
    """The evaluations a Ray result still knows (kept checkpoints + the final report), as metrics.jsonl records."""
    seen: dict[int, dict[str, Any]] = {}
    for record in [*(getattr(result, "checkpoint_metrics", None) or []), getattr(result, "best_metrics", None) or {},
                   getattr(result, "metrics", None) or {}]:
        if isinstance(record, dict) and "step" in record:
            seen[int(record["step"])] = {"kind": "eval", **record}
    return [seen[step] for step in sorted(seen)]


def local_checkpoint(result: Any, into: Path) -> Path:
    """The best (else latest) checkpoint of a Ray result as a local folder (downloaded when stored on S3)."""
    from trm.distributed.train_job import fetch_checkpoint

    uri = result.best_checkpoint or result.latest_checkpoint
    if not uri:
        raise FileNotFoundError(f"Ray run {result.name!r} in {result.storage_uri} reported no checkpoint")
    return fetch_checkpoint(uri, into)


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[10, 60])
def ray_train(config: TRMConfig, address: str | None, workers: int, storage: str, name: str) -> Any:
    """The Ray Train job. A retry re-uses the same run name and storage, so it resumes from the latest
    checkpoint instead of starting over (cluster hiccups cost minutes, not the run)."""
    from trm.distributed.train_job import run_ray_training

    get_run_logger().info("Ray training %s: %d worker(s), address %s, storage %s", name, workers,
                          address or "local", storage)
    return run_ray_training(config, address=address, workers=workers, storage=storage, name=name)


@task(cache_policy=NO_CACHE)
def export_run(result: Any, run_dir: Path) -> TrainOutcome:
    """Export the run's best checkpoint and collect what publishing needs."""
    checkpoint = local_checkpoint(result, run_dir / "best-checkpoint")
    export_dir = export_checkpoint(checkpoint, run_dir / "export")
    metrics_log: Path | None = run_dir / "metrics.jsonl"
    if not metrics_log.is_file():  # the Ray job logs to Ray; keep what it reported for the model card's curve
        metrics_log = write_metrics_log(metrics_history(result), metrics_log)
    config = json.loads((export_dir / "config.json").read_text())
    return TrainOutcome(
        run_name=result.name, run_dir=str(run_dir), export_dir=str(export_dir),
        metrics_log=str(metrics_log) if metrics_log else None, storage=result.storage_uri,
        checkpoint=str(result.best_checkpoint or result.latest_checkpoint), restored=bool(result.restored),
        metrics={k: v for k, v in (result.metrics or {}).items() if isinstance(v, (int, float, str, bool))},
        config=config,
    )


@flow(name="train", log_prints=True)
def train(preset: str, data_root: str, run_dir: str, overrides: list[str] | None = None,
          ray_address: str | None = None, workers: int = 2, ray_storage: str | None = None,
          run_name: str | None = None) -> TrainOutcome:
    """Train ``preset`` (+ ``overrides``) on Ray with ``workers`` workers; checkpoints go to ``ray_storage``
    (a folder or s3://bucket/prefix; default ``<run_dir>/ray``). Returns the export and the run's facts."""
    run_path = Path(run_dir).resolve()
    config = resolve_config(preset, list(overrides or []), Path(data_root), run_path)
    name = run_name or run_path.name
    storage = ray_storage or str(run_path / "ray")
    result = ray_train(config, ray_address, workers, storage, name)
    return export_run(result, run_path)
