"""Hyper-parameter search with Ray Tune: each trial is a full Ray Train run of our job, ASHA stops weak trials.

In Ray Train V2 a ``Tuner(trainer)`` is rejected; Tune instead runs a small function per trial that builds a
``TorchTrainer`` with ``TuneReportCallback`` and calls ``fit()``. The function itself holds almost no resources
(0.01 CPU); the Train workers hold the CPUs/GPUs, so the number of concurrent trials is what the cluster can place.
"""

from __future__ import annotations

import csv
import io
import math
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from ray import tune
from ray.tune.integration.ray_train import TuneReportCallback
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search.basic_variant import BasicVariantGenerator

from trm import markdown
from trm.atomic import atomic_write_text
from trm.config import TRMConfig
from trm.data.build import ensure_built
from trm.data.loader import PuzzleDataset
from trm.data.sampler import epoch_steps
from trm.distributed.capacity import TRAINABLE_CPU, ensure_capacity, wait_for_capacity
from trm.distributed.cluster import connect
from trm.distributed.space import VARIANT, SearchSettings, SearchSpace, check_variants, load_space, trial_config
from trm.distributed.storage import Storage, resolve_storage
from trm.distributed.train_job import (
    CHECKPOINT_SCORE,
    UNSCORED,
    RayScaling,
    absolute_run_folder,
    build_torch_trainer,
    check_batch_split,
    checkpoint_uri,
)
from trm.s3 import S3Settings
from trm.train.cadence import Cadence, step_budget


class TuneResult(BaseModel):
    name: str
    storage_uri: str
    metric: str
    best_trial: str | None
    best_params: dict[str, Any] = Field(default_factory=dict)
    best_checkpoint: str | None = None
    best_metrics: dict[str, Any] = Field(default_factory=dict)
    trials: list[dict[str, Any]] = Field(default_factory=list)
    stopped_early: int = 0
    table_csv: str | None = None
    table_markdown: str | None = None
    seconds: float = 0.0


def _tune_distribution(spec: dict[str, Any]) -> Any:
    kind, args = next(iter(spec.items()))
    if kind == "grid":
        return tune.grid_search(list(args))
    if kind == "choice":
        return tune.choice(list(args))
    if kind == "uniform":
        return tune.uniform(*args)
    if kind == "loguniform":
        return tune.loguniform(*args)
    if kind == "randint":
        return tune.randint(args[0], args[1] + 1)  # inclusive high, like the YAML reads
    return args  # "value"


def _run_trial(
    params: dict[str, Any],
    *,
    base: dict[str, Any],
    space: dict[str, Any],
    storage: Storage,
    experiment: str,
    runs_dir: str,
    use_gpu: bool,
) -> None:
    """One Tune trial = one Ray Train run (TuneReportCallback forwards every report to Tune), with its own run
    folder ``runs_dir/<trial id>`` for its metrics log and evaluation reports."""
    search_space = SearchSpace.model_validate(space)
    trial_id = tune.get_context().get_trial_id()
    config = trial_config(
        TRMConfig.model_validate(base), search_space, {**params, "run.output_dir": runs_dir, "run.name": trial_id}
    )
    settings = search_space.search
    scaling = RayScaling(workers=settings.workers_per_trial, cpus_per_worker=settings.cpus_per_worker, use_gpu=use_gpu)
    trials_storage = Storage(
        uri=storage.uri_of(experiment, "trials"),
        ray_path=f"{storage.ray_path.rstrip('/')}/{experiment}/trials",
        filesystem=storage.filesystem,
        is_remote=storage.is_remote,
    )
    trainer = build_torch_trainer(
        config,
        scaling=scaling,
        storage=trials_storage,
        name=trial_id,
        use_gpu=use_gpu,
        max_failures=settings.max_failures,
        keep_best=1,
        callbacks=[TuneReportCallback()],
    )
    trainer.fit()


def max_concurrency(settings: SearchSettings, cluster_cpus: float) -> int:
    if settings.max_concurrent_trials:
        return settings.max_concurrent_trials
    per_trial = settings.workers_per_trial * settings.cpus_per_worker + 0.01
    return max(1, int(cluster_cpus // per_trial)) if cluster_cpus else 1


def reports_per_trial(config: TRMConfig) -> int:
    """How many reports a full trial makes (ASHA's max_t): its evaluation and checkpoint steps. The dataset is
    opened only when the budget or the intervals are counted in epochs."""
    t = config.train
    if t.max_steps is not None and t.interval_unit == "steps":
        return len(Cadence.for_run(t, t.max_steps, 1.0).report_steps())
    train = PuzzleDataset.open(config.data.resolve_path(), "train")
    per_epoch = epoch_steps(1.0, train.num_groups, train.mean_puzzle_examples, t.global_batch_size)
    cadence = Cadence.for_run(t, step_budget(t, train.num_groups, train.mean_puzzle_examples), per_epoch)
    return len(cadence.report_steps())


def _scheduler(settings: SearchSettings, max_reports: int) -> FIFOScheduler | ASHAScheduler:
    if settings.scheduler == "fifo":
        return FIFOScheduler()
    return ASHAScheduler(
        time_attr="training_iteration",
        max_t=max_reports,
        grace_period=settings.grace_period,
        reduction_factor=settings.reduction_factor,
    )


def _build_tuner(
    config: TRMConfig,
    space: SearchSpace,
    target: Storage,
    experiment: str,
    output: Path,
    max_reports: int,
    cluster_cpus: float,
    use_gpu: bool,
    resume: bool = False,
) -> tune.Tuner:
    """ASHA (or FIFO: every trial runs its full budget) over function trainables, each a Ray Train run with its own
    run folder below ``output/trials``; a space's variants are one more grid parameter, ``variant``. With
    ``resume``, an experiment of the same name in the storage is continued: finished trials are not run again,
    unfinished and failed ones go on from their last checkpoint."""
    settings = space.search
    trainable = tune.with_parameters(
        _run_trial,
        base=config.model_dump(mode="json"),
        space=space.model_dump(mode="json"),
        storage=target,
        experiment=experiment,
        runs_dir=str(output.resolve() / "trials"),
        use_gpu=use_gpu,
    )
    param_space = {key: _tune_distribution(spec) for key, spec in space.space.items()}
    if space.variants:
        param_space[VARIANT] = tune.grid_search(list(space.variants))
    # Tune ignores TuneConfig.max_concurrent_trials when given a search generator, so the generator itself holds
    # the limit: without it every trial's Train controller starts at once (0.01 CPU each) and the idle ones
    # starve the two that can run
    concurrency = max_concurrency(settings, cluster_cpus)
    path = f"{target.ray_path.rstrip('/')}/{experiment}"
    if resume:
        if not tune.Tuner.can_restore(path, storage_filesystem=target.filesystem):
            raise FileNotFoundError(f"resume: no Tune run {experiment!r} to continue at {path}")
        return tune.Tuner.restore(
            path,
            tune.with_resources(trainable, {"cpu": TRAINABLE_CPU}),
            resume_errored=True,
            param_space=param_space,
            storage_filesystem=target.filesystem,
        )
    return tune.Tuner(
        tune.with_resources(trainable, {"cpu": TRAINABLE_CPU}),
        param_space=param_space,
        tune_config=tune.TuneConfig(
            metric=settings.metric,
            mode=settings.mode,
            num_samples=settings.num_samples,
            scheduler=_scheduler(settings, max_reports),
            search_alg=BasicVariantGenerator(random_state=settings.seed, max_concurrent=concurrency),
        ),
        run_config=tune.RunConfig(
            name=experiment, storage_path=target.ray_path, storage_filesystem=target.filesystem, verbose=0
        ),
    )


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
    resume: bool = False,
) -> TuneResult:
    """Search ``space`` around ``config`` with ASHA; write ``results.csv`` / ``results.md`` to ``out_dir`` (default
    ``runs/tune/<name>``) and return the best trial's best checkpoint (by eval exact accuracy). A trial that could
    never fit the cluster fails before Ray starts (a local Ray) or after a bounded wait (a cluster). ``resume``
    continues the experiment ``name`` found in ``storage`` (a killed study picks up where it stopped)."""
    started = time.perf_counter()
    config = absolute_run_folder(config)
    search_space = space if isinstance(space, SearchSpace) else load_space(space)
    settings = search_space.search
    experiment = name or f"{config.run.name}-tune"
    target = resolve_storage(storage, s3)
    output = Path(out_dir) if out_dir is not None else Path(config.run.output_dir) / "tune" / experiment
    trial = RayScaling(workers=settings.workers_per_trial, cpus_per_worker=settings.cpus_per_worker)
    demand = trial.demand(extra_cpus=TRAINABLE_CPU)  # at least one trial must fit
    check_variants(config, search_space)
    for variant in search_space.variants or [None]:  # a variant may change the batch
        values = {VARIANT: variant} if variant is not None else {}
        check_batch_split(trial_config(config, search_space, values), trial.workers)
    ensure_capacity(demand, address)
    session = connect(address)
    try:
        if session.started_here:
            ensure_built(config.data.resolve_path(), config.data.name)
        else:
            wait_for_capacity(demand, session.address)
        max_reports = reports_per_trial(trial_config(config, search_space, {}))
        gpu = use_gpu if use_gpu is not None else session.gpus >= settings.workers_per_trial
        tuner = _build_tuner(
            config, search_space, target, experiment, output, max_reports, session.cpus, gpu, resume=resume
        )
        grid = tuner.fit()
    finally:
        session.close()
    return summarize(grid, search_space, target, experiment, output, max_reports, time.perf_counter() - started)


def _trial_row(result: Any, metric: str, storage: Storage, max_reports: int) -> dict[str, Any]:
    """One trial: its parameters, how far it ran, and its best checkpointed report."""
    history = result.metrics_dataframe
    records = history.to_dict("records") if history is not None and len(history) else []
    # checkpoints evaluated at their own step (a stale one scores UNSCORED), best validation score; on a tie the
    # later step, as Ray Train ranks them: it keeps that one and deletes the earlier (CheckpointConfig.num_to_keep)
    scored = [r for r in records if _scored(r.get(CHECKPOINT_SCORE)) and r.get("checkpoint_path")]
    top = max(scored, key=lambda r: (r[CHECKPOINT_SCORE], r.get("step", 0))) if scored else {}
    params = dict(result.config or {})
    return {
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


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _scored(value: Any) -> bool:
    return _finite(value) and value > UNSCORED


def summarize(
    grid: Any, space: SearchSpace, storage: Storage, experiment: str, output: Path, max_reports: int, seconds: float
) -> TuneResult:
    """The result of a search: every trial's row (best first), the tables on disk, and the best trial."""
    metric = space.search.metric
    rows = [_trial_row(result, metric, storage, max_reports) for result in grid]
    rows.sort(key=lambda r: (r[metric] is None, -(r[metric] or 0.0), -(r["best_step"] or 0)))
    best = rows[0] if rows and rows[0][metric] is not None else None
    csv_path, md_path = write_tables(rows, output)
    return TuneResult(
        name=experiment,
        storage_uri=storage.uri_of(experiment),
        metric=metric,
        best_trial=best["trial"] if best else None,
        best_params=best["_params"] if best else {},
        best_checkpoint=best["checkpoint"] if best else None,
        best_metrics=best["_metrics"] if best else {},
        trials=[{**{k: v for k, v in r.items() if not k.startswith("_")}, "report": r["_metrics"]} for r in rows],
        stopped_early=sum(1 for r in rows if r["stopped_early"]),
        table_csv=str(csv_path),
        table_markdown=str(md_path),
        seconds=seconds,
    )


def write_tables(rows: list[dict[str, Any]], output: Path) -> tuple[Path, Path]:
    """results.csv and results.md (each written atomically)."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if not k.startswith("_") and k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    csv_path = atomic_write_text(output / "results.csv", buffer.getvalue())
    md_path = atomic_write_text(
        output / "results.md", markdown.table(columns, [[row.get(c) for c in columns] for row in rows]) + "\n"
    )
    return csv_path, md_path
