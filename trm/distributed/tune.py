"""Hyper-parameter search with Ray Tune: each trial is a full Ray Train run of our job, ASHA stops weak trials.

Why the function-trainable pattern: in Ray Train V2 a ``Tuner(trainer)`` is rejected; Tune instead runs a small
function per trial that builds a ``TorchTrainer`` with ``TuneReportCallback`` and calls ``fit()``. The function
itself holds almost no resources (0.01 CPU); the Train workers hold the CPUs/GPUs, so the number of concurrent
trials is what the cluster can place (``max_concurrent_trials``).

A search space is YAML (``trm/presets/spaces/<name>.yaml``)::

    fixed:                 # dotted config overrides applied to every trial
      train.max_steps: 200
    space:                 # dotted key -> one distribution
      train.lr: {loguniform: [1.0e-4, 3.0e-3]}
      model.H_cycles: {choice: [1, 2]}
      train.weight_decay: {grid: [0.1, 1.0]}
    search:                # how to search (all optional)
      num_samples: 2       # samples per grid point
      metric: eval_score   # eval exact accuracy, token accuracy only breaking ties (see SCORE)
      grace_period: 1      # ASHA, in reports (= evaluations)
      reduction_factor: 2
      workers_per_trial: 1
      cpus_per_worker: 0.9
      seed: 0
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from trm.config import ConfigError, TRMConfig, apply_overrides, validate_config
from trm.distributed.storage import S3Settings, Storage, resolve_storage
from trm.distributed.train_job import TUNE_SCORE as SCORE
from trm.distributed.train_job import RayScaling, build_torch_trainer, checkpoint_uri

SPACES_DIR = Path(__file__).resolve().parent.parent / "presets" / "spaces"
_KINDS = ("grid", "choice", "uniform", "loguniform", "randint", "value")


class SearchSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    num_samples: int = Field(1, gt=0)
    metric: str = SCORE
    mode: str = "max"
    grace_period: int = Field(1, gt=0, description="ASHA: reports before a trial can be stopped")
    reduction_factor: float = Field(2, gt=1)
    workers_per_trial: int = Field(1, gt=0)
    cpus_per_worker: float = Field(0.9, gt=0)
    max_concurrent_trials: int | None = Field(None, gt=0, description="None = as many as the cluster can place")
    max_failures: int = Field(1, ge=0)
    seed: int = 0


class SearchSpace(BaseModel):
    """A parsed search-space file: fixed overrides, distributions per dotted key, search settings."""

    model_config = ConfigDict(extra="forbid")

    fixed: dict[str, Any] = Field(default_factory=dict)
    space: dict[str, dict[str, Any]] = Field(default_factory=dict)
    search: SearchSettings = Field(default_factory=SearchSettings)

    @model_validator(mode="after")
    def _check_distributions(self) -> SearchSpace:
        for key, dist in self.space.items():
            if len(dist) != 1 or next(iter(dist)) not in _KINDS:
                raise ValueError(f"space.{key}: expected exactly one of {_KINDS}, got {sorted(dist)}")
            kind, args = next(iter(dist.items()))
            if kind in ("uniform", "loguniform", "randint") and (not isinstance(args, list) or len(args) != 2):
                raise ValueError(f"space.{key}: {kind} needs [low, high], got {args!r}")
            if kind in ("grid", "choice") and (not isinstance(args, list) or not args):
                raise ValueError(f"space.{key}: {kind} needs a non-empty list, got {args!r}")
        return self

    def overrides_for(self, values: dict[str, Any]) -> list[str]:
        """Dotted ``key=value`` strings (values as JSON, which is valid YAML) for one trial."""
        merged = {**self.fixed, **values}
        return [f"{key}={json.dumps(value)}" for key, value in merged.items()]

    def grid_size(self) -> int:
        return math.prod(len(d["grid"]) for d in self.space.values() if "grid" in d)


def load_space(space: str | Path) -> SearchSpace:
    """A space by name (``trm/presets/spaces/<name>.yaml``) or path; errors name the file and the key."""
    path = Path(space)
    if not (path.suffix in (".yaml", ".yml") and path.is_file()):
        path = SPACES_DIR / f"{space}.yaml"
    if not path.is_file():
        names = sorted(p.stem for p in SPACES_DIR.glob("*.yaml"))
        raise ConfigError(f"unknown search space {str(space)!r}: not a YAML file and not one of {names}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
        return SearchSpace.model_validate(raw)
    except Exception as err:
        raise ConfigError(f"{path}: invalid search space: {err}") from err


def _tune_distribution(spec: dict[str, Any]):
    from ray import tune

    kind, args = next(iter(spec.items()))
    return {
        "grid": lambda: tune.grid_search(list(args)),
        "choice": lambda: tune.choice(list(args)),
        "uniform": lambda: tune.uniform(*args),
        "loguniform": lambda: tune.loguniform(*args),
        "randint": lambda: tune.randint(args[0], args[1] + 1),  # inclusive high, like the YAML reads
        "value": lambda: args,
    }[kind]()


def trial_config(base: TRMConfig, space: SearchSpace, values: dict[str, Any]) -> TRMConfig:
    raw = apply_overrides(base.model_dump(mode="json"), space.overrides_for(values))
    return validate_config(raw, f"trial {values}")


def _run_trial(params: dict[str, Any], *, base: dict, space: dict, storage: Storage, experiment: str,
               use_gpu: bool) -> None:
    """One Tune trial = one Ray Train run (TuneReportCallback forwards every report to Tune)."""
    import ray.tune
    from ray.tune.integration.ray_train import TuneReportCallback

    search_space = SearchSpace.model_validate(space)
    config = trial_config(TRMConfig.model_validate(base), search_space, params)
    settings = search_space.search
    scaling = RayScaling(workers=settings.workers_per_trial, cpus_per_worker=settings.cpus_per_worker,
                         use_gpu=use_gpu)
    trial_id = ray.tune.get_context().get_trial_id()
    trials_storage = Storage(uri=storage.uri_of(experiment, "trials"),
                             ray_path=f"{storage.ray_path.rstrip('/')}/{experiment}/trials",
                             filesystem=storage.filesystem, is_remote=storage.is_remote)
    trainer = build_torch_trainer(config, scaling=scaling, storage=trials_storage, name=trial_id, use_gpu=use_gpu,
                                  max_failures=settings.max_failures, keep_best=1,
                                  callbacks=[TuneReportCallback()], score_attribute=settings.metric)
    trainer.fit()


@dataclass
class TuneResult:
    name: str
    storage_uri: str
    metric: str
    best_trial: str | None
    best_params: dict[str, Any]
    best_checkpoint: str | None
    best_metrics: dict[str, Any]
    trials: list[dict[str, Any]] = field(default_factory=list)
    stopped_early: int = 0
    table_csv: str | None = None
    table_markdown: str | None = None
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _max_concurrency(settings: SearchSettings, cluster_cpus: float) -> int:
    if settings.max_concurrent_trials:
        return settings.max_concurrent_trials
    per_trial = settings.workers_per_trial * settings.cpus_per_worker + 0.01
    return max(1, int(cluster_cpus // per_trial)) if cluster_cpus else 1


def run_tune(
    config: TRMConfig,
    space: SearchSpace | str | Path,
    *,
    address: str | None = None,
    storage: str | Path | None = None,
    s3: S3Settings | None = None,
    name: str | None = None,
    out_dir: str | Path | None = None,
    use_gpu: bool | None = None,
) -> TuneResult:
    """Search ``space`` around ``config`` with ASHA; write ``results.csv`` / ``results.md`` to ``out_dir`` (default
    ``runs/tune/<name>``) and return the best trial's best checkpoint (by eval exact accuracy)."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    from trm.distributed.cluster import connect

    started = time.perf_counter()
    search_space = space if isinstance(space, SearchSpace) else load_space(space)
    settings = search_space.search
    experiment = name or f"{config.run.name}-tune"
    target = resolve_storage(storage, s3)
    output = Path(out_dir) if out_dir is not None else Path(config.run.output_dir) / "tune" / experiment
    max_reports = _expected_reports(trial_config(config, search_space, {}))
    session = connect(address)
    try:
        if session.started_here:
            from trm.train.loop import ensure_dataset

            ensure_dataset(config)
        gpu = use_gpu if use_gpu is not None else session.gpus >= settings.workers_per_trial
        trainable = tune.with_parameters(
            _run_trial, base=config.model_dump(mode="json"), space=search_space.model_dump(mode="json"),
            storage=target, experiment=experiment, use_gpu=gpu)
        trainable = tune.with_resources(trainable, {"cpu": 0.01})
        scheduler = ASHAScheduler(time_attr="training_iteration", max_t=max_reports,
                                  grace_period=settings.grace_period, reduction_factor=settings.reduction_factor)
        tuner = tune.Tuner(
            trainable,
            param_space={key: _tune_distribution(spec) for key, spec in search_space.space.items()},
            tune_config=tune.TuneConfig(
                metric=settings.metric, mode=settings.mode, scheduler=scheduler, num_samples=settings.num_samples,
                max_concurrent_trials=_max_concurrency(settings, session.cpus),
                search_alg=BasicVariantGenerator(random_state=settings.seed),
            ),
            run_config=tune.RunConfig(name=experiment, storage_path=target.ray_path,
                                      storage_filesystem=target.filesystem, verbose=0),
        )
        grid = tuner.fit()
    finally:
        session.close()
    return _summarize(grid, search_space, target, experiment, output, max_reports, time.perf_counter() - started)


def _expected_reports(config: TRMConfig) -> int:
    """How many reports (evaluations) a full trial makes: ASHA's max_t."""
    from trm.data.loader import PuzzleDataset
    from trm.data.sampler import GroupSampler

    t = config.train
    if t.max_steps is not None:
        total = t.max_steps
        steps_per_epoch = 1.0
        if t.interval_unit == "epochs":
            ds = PuzzleDataset.open(config.data.resolve_path(), "train")
            steps_per_epoch = GroupSampler(ds, t.global_batch_size, t.seed).estimated_batches_per_epoch
    else:
        ds = PuzzleDataset.open(config.data.resolve_path(), "train")
        sampler = GroupSampler(ds, t.global_batch_size, t.seed)
        total, steps_per_epoch = sampler.total_steps(t.epochs), sampler.estimated_batches_per_epoch
    every = t.eval_interval or t.checkpoint_interval
    if not every:
        return 1
    interval = max(1, round(every * steps_per_epoch if t.interval_unit == "epochs" else every))
    return max(1, math.ceil(total / interval))


def _summarize(grid, space: SearchSpace, storage: Storage, experiment: str, output: Path, max_reports: int,
               seconds: float) -> TuneResult:
    metric = space.search.metric
    rows: list[dict[str, Any]] = []
    best_row: dict[str, Any] | None = None
    for result in grid:
        history = result.metrics_dataframe
        records = history.to_dict("records") if history is not None and len(history) else []
        scored = [r for r in records if r.get(metric) is not None and r.get("checkpoint_path")]
        top = max(scored, key=lambda r: (r[metric], r.get("step", 0))) if scored else {}
        params = {k: v for k, v in (result.config or {}).items()}
        row = {
            "trial": (result.metrics or {}).get("trial_id") or Path(str(result.path)).name,
            **{f"param:{k}": v for k, v in params.items()},
            "reports": len(records),
            "stopped_early": len(records) < max_reports and result.error is None,
            "error": type(result.error).__name__ if result.error else "",
            "best_step": top.get("step"),
            metric: top.get(metric),
            "eval_exact_accuracy": top.get("eval_exact_accuracy"),
            "eval_accuracy": top.get("eval_accuracy"),
            "checkpoint": checkpoint_uri(storage, str(top["checkpoint_path"])) if top else None,
            "_params": params,
            "_metrics": {k: v for k, v in top.items() if isinstance(v, (int, float, str))},
        }
        rows.append(row)
        if top and (best_row is None or (row[metric], row["best_step"] or 0) > (best_row[metric], best_row["best_step"] or 0)):
            best_row = row
    rows.sort(key=lambda r: (r[metric] is None, -(r[metric] or 0.0)))
    csv_path, md_path = _write_tables(rows, output)
    return TuneResult(
        name=experiment,
        storage_uri=storage.uri_of(experiment),
        metric=metric,
        best_trial=best_row["trial"] if best_row else None,
        best_params=best_row["_params"] if best_row else {},
        best_checkpoint=best_row["checkpoint"] if best_row else None,
        best_metrics=best_row["_metrics"] if best_row else {},
        trials=[{k: v for k, v in r.items() if not k.startswith("_")} for r in rows],
        stopped_early=sum(1 for r in rows if r["stopped_early"]),
        table_csv=str(csv_path),
        table_markdown=str(md_path),
        seconds=seconds,
    )


def _write_tables(rows: list[dict[str, Any]], output: Path) -> tuple[Path, Path]:
    """results.csv and results.md, written to temp names then renamed."""
    output.mkdir(parents=True, exist_ok=True)
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if not k.startswith("_") and k not in columns]
    csv_path, md_path = output / "results.csv", output / "results.md"
    tmp = csv_path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(csv_path)

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.4g}"
        return "" if value is None else str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    tmp = md_path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(md_path)
    return csv_path, md_path
