"""Flow `tune`: a Ray Tune search (ASHA on eval exact accuracy; each trial a Ray Train run) whose best trial's
best checkpoint is exported like a plain training run, so evaluation and publishing do not care which it was."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, Field

from pipelines.artifacts import artifact_key
from pipelines.retries import retry_if_transient
from pipelines.train import TrainOutcome, export_checkpoint, resolve_config, write_reported_metrics
from trm.config import TRMConfig
from trm.distributed.space import SPACES_DIR, SearchSpace, load_space
from trm.distributed.train_job import fetch_checkpoint, selection_from_report
from trm.distributed.tune import TuneResult, run_tune


class TuneOutcome(BaseModel):
    run_name: str
    best: TrainOutcome
    best_trial: str | None = None
    best_params: dict[str, Any] = Field(default_factory=dict)
    results_markdown: str | None = None
    trials: list[dict[str, Any]] = Field(default_factory=list, description="every trial's row, best first")
    trials_dir: str = ""  # the trials' run folders (metrics.jsonl, config.json): <trials_dir>/<trial id>


def resolve_space(space: str | None, preset: str, trials: int | None) -> SearchSpace:
    """The search space: ``space`` (a name in trm/presets/spaces or a YAML path), else the one named like the
    preset; ``trials`` overrides its samples per grid point."""
    if space is None and not (SPACES_DIR / f"{preset}.yaml").is_file():
        known = sorted(p.stem for p in SPACES_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"no search space given and none named like preset {preset!r}; spaces: {known}")
    loaded = load_space(space or preset)
    if trials:
        loaded = loaded.model_copy(update={"search": loaded.search.model_copy(update={"num_samples": trials})})
    return loaded


@task(cache_policy=NO_CACHE, retries=1, retry_delay_seconds=30, retry_condition_fn=retry_if_transient)
def ray_tune(
    config: TRMConfig,
    space: SearchSpace,
    address: str | None,
    storage: str,
    name: str,
    out_dir: Path,
    resume: bool = False,
) -> TuneResult:
    """The search (trm.distributed.tune.run_tune): ASHA over Ray Train trials; results tables in ``out_dir``."""
    get_run_logger().info(
        "Ray Tune %s: %d sample(s) per grid point, address %s, storage %s%s",
        name,
        space.search.num_samples,
        address or "local",
        storage,
        " (resumed)" if resume else "",
    )
    return run_tune(config, space, address=address, storage=storage, name=name, out_dir=out_dir, resume=resume)


@task(cache_policy=NO_CACHE)
def export_best(result: TuneResult, run_dir: Path, config: TRMConfig) -> TuneOutcome:
    """Export the best trial's best checkpoint (downloaded first when the storage is S3)."""
    if not result.best_checkpoint:
        raise FileNotFoundError(f"Tune run {result.name!r} in {result.storage_uri}: no trial reported a checkpoint")
    checkpoint = fetch_checkpoint(result.best_checkpoint, run_dir / "best-checkpoint")
    export_dir = export_checkpoint(checkpoint, run_dir / "export")
    best = dict(result.best_metrics)
    metrics_log = write_reported_metrics([best], run_dir / "metrics.jsonl")
    table_path = Path(result.table_markdown) if result.table_markdown else None
    outcome = TrainOutcome(
        run_name=result.name,
        run_dir=str(run_dir),
        export_dir=str(export_dir),
        metrics_log=str(metrics_log) if metrics_log else None,
        storage=result.storage_uri,
        checkpoint=result.best_checkpoint,
        metrics={k: v for k, v in best.items() if isinstance(v, (int, float, str))},
        config=json.loads((export_dir / "config.json").read_text()),
        selection=selection_from_report(best, config).model_dump(mode="json"),
    )
    return TuneOutcome(
        run_name=result.name,
        best=outcome,
        best_trial=result.best_trial,
        best_params=dict(result.best_params),
        results_markdown=table_path.read_text() if table_path and table_path.is_file() else None,
        trials=list(result.trials),
        trials_dir=str(table_path.parent / "trials") if table_path else "",
    )


@flow(name="tune", log_prints=True)
def tune(
    preset: str,
    data_root: str,
    run_dir: str,
    overrides: list[str] | None = None,
    space: str | None = None,
    trials: int | None = None,
    ray_address: str | None = None,
    ray_storage: str | None = None,
    run_name: str | None = None,
    results_dir: str | None = None,
    resume: bool = False,
) -> TuneOutcome:
    """Search hyper-parameters of ``preset`` over ``space`` (default: the space named like the preset; ``trials``
    samples per grid point, default the space's); returns the best trial's export and every trial's row, and leaves
    the results table as a Prefect artifact. Tables and trial folders go to ``results_dir`` (default
    ``run_dir/tune``); ``resume`` continues the Tune run ``run_name`` found in ``ray_storage``."""
    run_path = Path(run_dir).resolve()
    config = resolve_config(preset, list(overrides or []), Path(data_root), run_path)
    name = run_name or f"{run_path.name}-tune"
    search = resolve_space(space, preset, trials)
    results = Path(results_dir).resolve() if results_dir else run_path / "tune"
    result = ray_tune(config, search, ray_address, ray_storage or str(run_path / "ray"), name, results, resume)
    outcome = export_best(result, run_path, config)
    if outcome.results_markdown:
        create_markdown_artifact(
            outcome.results_markdown, key=artifact_key(name, "results"), description=f"Ray Tune trials of {name}"
        )
    return outcome
