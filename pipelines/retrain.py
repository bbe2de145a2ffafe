"""Flow `retrain`: versioned data -> Ray training (or a Tune search) -> evaluation -> publish, with artifacts.

Run it from a deployment (`prefect deployment run 'retrain/smoke'`, see prefect.yaml) or directly:

    python -m pipelines.retrain --preset smoke                 # local Ray, Prefect without a server, ./artifacts

The data is named by its DVC hash (an unchanged stage is not rebuilt), training on CPU is deterministic for a fixed
preset, seed and worker count, and the published manifest records every input, so two runs with the same code and
parameters publish the same data hash and metrics. Each run writes ``runs/<name>-<run id>/retrain.json``.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from prefect import flow, get_run_logger
from prefect.runtime import flow_run as current_flow_run
from pydantic import BaseModel, Field

from pipelines.artifacts import record_run_artifacts
from pipelines.evaluate import EvalOutcome, evaluate
from pipelines.prepare_data import PreparedData, prepare_data
from pipelines.project import local_prefect_settings, project_dir
from pipelines.publish import DEFAULT_RETRIES, DEFAULT_RETRY_DELAY_S, PublishedModel, publish
from pipelines.train import TrainOutcome, train
from pipelines.tune import tune as tune_flow
from trm.atomic import atomic_write_json
from trm.config import load_config
from trm.store import PublishRequest, redact


class TuneRequest(BaseModel):
    """Run a Ray Tune search instead of one training run, and publish its best trial."""

    space: str | None = Field(None, description="search space under trm/presets/spaces (default: the preset's)")
    trials: int | None = Field(None, gt=0, description="samples per grid point (default: the space's)")


class Infrastructure(BaseModel):
    """Where the work runs; the defaults are the embedded ones (local Ray, this checkout, no DVC remote)."""

    ray_address: str | None = Field(None, description="Ray cluster address; None starts a local Ray")
    ray_storage: str | None = Field(None, description="Ray checkpoints: a folder or s3://; default in the run folder")
    dvc_remote: str | None = Field(None, description="DVC remote; None = the project's default remote, if any")
    repo_dir: str | None = Field(None, description="project checkout (default: this one)")


class PublishOptions(BaseModel):
    aliases: list[str] = Field(default_factory=list, description="aliases to move besides latest")
    retries: int = Field(DEFAULT_RETRIES, ge=0, description="publish retries while the store is unreachable")
    retry_delay_s: float = Field(DEFAULT_RETRY_DELAY_S, ge=0)


class RetrainSummary(BaseModel):
    """What a retrain did (also written to ``runs/<name>-<run id>/retrain.json``)."""

    model: PublishedModel
    data: PreparedData
    train: TrainOutcome
    metrics: dict[str, float]
    throughput: dict[str, float]
    eval_report: str
    run_dir: str


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class RetrainPlan(BaseModel):
    """The retrain's inputs, resolved and checked before any work starts."""

    preset: str
    overrides: list[str]
    workers: int
    tune: TuneRequest | None
    dataset: str
    model_name: str
    store_url: str
    repo_dir: Path
    run_dir: Path
    where: Infrastructure
    publishing: PublishOptions
    timestamps: dict[str, str] = Field(default_factory=dict)


def plan_retrain(
    preset: str,
    dataset: str | None,
    overrides: list[str] | None,
    workers: int,
    tune: TuneRequest | None,
    store_url: str | None,
    model_name: str | None,
    where: Infrastructure,
    publishing: PublishOptions,
) -> RetrainPlan:
    """Resolve defaults and load the config once, so that a bad preset or override fails before any work."""
    repo = project_dir(where.repo_dir)
    user_overrides = [*(overrides or []), *([f"data.name={dataset}"] if dataset else [])]
    base = load_config(preset, user_overrides)
    name = model_name or base.run.name
    run_id = str(current_flow_run.get_id() or uuid.uuid4())[:8]
    return RetrainPlan(
        preset=preset,
        overrides=user_overrides,
        workers=workers,
        tune=tune,
        dataset=base.data.name,
        model_name=name,
        store_url=store_url or os.environ.get("TRM_STORE") or str(repo / "artifacts"),
        repo_dir=repo,
        run_dir=repo / "runs" / f"{name}-{run_id}",
        where=where,
        publishing=publishing,
        timestamps={"started": _now()},
    )


def _training(plan: RetrainPlan, prepared: PreparedData) -> tuple[TrainOutcome, str | None, str | None]:
    """(outcome, Tune run name, best trial) of a Ray Train run or, with ``plan.tune``, a Tune search."""
    data_root, where = str(Path(prepared.data_dir).parent), plan.where
    if plan.tune is None:
        trained = train(
            plan.preset,
            data_root,
            str(plan.run_dir),
            overrides=plan.overrides,
            ray_address=where.ray_address,
            workers=plan.workers,
            ray_storage=where.ray_storage,
        )
        return trained, None, None
    tuned = tune_flow(
        plan.preset,
        data_root,
        str(plan.run_dir),
        overrides=plan.overrides,
        space=plan.tune.space,
        trials=plan.tune.trials,
        ray_address=where.ray_address,
        ray_storage=where.ray_storage,
    )
    return tuned.best, tuned.run_name, tuned.best_trial


def _publish_request(
    plan: RetrainPlan,
    prepared: PreparedData,
    trained: TrainOutcome,
    tune_run: str | None,
    tune_trial: str | None,
    evaluated: EvalOutcome,
) -> PublishRequest:
    """What the store records: the export, its test metrics and every input that made it."""
    return PublishRequest(
        name=plan.model_name,
        model_dir=Path(trained.export_dir),
        metrics=evaluated.metrics,
        metrics_log=Path(trained.metrics_log) if trained.metrics_log else None,
        dataset_dir=Path(prepared.data_dir),
        dvc_stage=prepared.stage,
        repo_dir=plan.repo_dir,
        ray_run_name=trained.run_name,
        tune_run_name=tune_run,
        tune_trial_name=tune_trial,
        aliases=plan.publishing.aliases,
        timestamps=plan.timestamps,
        extra={
            "preset": plan.preset,
            "overrides": plan.overrides,
            "workers": plan.workers,
            "tune": plan.tune is not None,
            "prefect_flow_run": str(current_flow_run.get_id() or ""),
        },
    )


def _facts(
    plan: RetrainPlan,
    prepared: PreparedData,
    trained: TrainOutcome,
    tune_run: str | None,
    published: PublishedModel,
    evaluated: EvalOutcome,
) -> dict[str, Any]:
    """The run's facts shown beside its metrics in the Prefect artifact."""
    return {
        "dataset": prepared.stage,
        "data md5 (dvc.lock)": prepared.md5,
        "dvc stages run": ", ".join(prepared.stages_ran) or "none (up to date)",
        "ray run": trained.run_name,
        "ray storage": redact(trained.storage),
        "workers": plan.workers,
        "tune run": tune_run or "-",
        "model": published.uri,
        **{f"throughput {k}": f"{v:.1f}" for k, v in evaluated.throughput.items() if "per_second" in k},
    }


@flow(name="retrain", log_prints=True)
def retrain(
    preset: str = "smoke",
    dataset: str | None = None,
    overrides: list[str] | None = None,
    workers: int = 2,
    tune: TuneRequest | None = None,
    store_url: str | None = None,
    model_name: str | None = None,
    eval_modes: list[str] | None = None,
    infrastructure: Infrastructure | None = None,
    publishing: PublishOptions | None = None,
) -> RetrainSummary:
    """Retrain ``preset`` (+ dotted ``overrides``) on ``dataset`` (default: the preset's) with ``workers`` Ray
    workers, or run the ``tune`` search; evaluate on the test split and publish as ``model_name`` (default: the
    preset's run name) to ``store_url`` (default $TRM_STORE, else <checkout>/artifacts)."""
    plan = plan_retrain(
        preset,
        dataset,
        overrides,
        workers,
        tune,
        store_url,
        model_name,
        infrastructure or Infrastructure(),
        publishing or PublishOptions(),
    )
    prepared = prepare_data(plan.dataset, remote=plan.where.dvc_remote, repo_dir=str(plan.repo_dir))
    get_run_logger().info(
        "data %s: md5 %s, %s",
        prepared.stage,
        prepared.md5,
        f"rebuilt ({prepared.stages_ran})" if prepared.stages_ran else "unchanged",
    )
    plan.timestamps["data_ready"] = _now()
    trained, tune_run, tune_trial = _training(plan, prepared)
    plan.timestamps["training_finished"] = _now()
    evaluated = evaluate(trained.export_dir, prepared.data_dir, out_dir=str(plan.run_dir / "eval"), modes=eval_modes)
    request = _publish_request(plan, prepared, trained, tune_run, tune_trial, evaluated)
    options = plan.publishing
    published = publish(request, store_url=plan.store_url, retries=options.retries, retry_delay_s=options.retry_delay_s)
    facts = _facts(plan, prepared, trained, tune_run, published, evaluated)
    record_run_artifacts(published, evaluated.metrics, facts, plan.store_url)
    summary = RetrainSummary(
        model=published,
        data=prepared,
        train=trained,
        metrics=evaluated.metrics,
        throughput=evaluated.throughput,
        eval_report=evaluated.report_path,
        run_dir=str(plan.run_dir),
    )
    atomic_write_json(plan.run_dir / "retrain.json", summary.model_dump(mode="json", exclude={"train": {"config"}}))
    print(f"published {published.uri}\n  model card: {published.card_url}\n  training curve: {published.curve_url}")
    return summary


def command(
    preset: Annotated[str, typer.Option(help="training preset (trm/presets/<name>.yaml)")] = "smoke",
    dataset: Annotated[str | None, typer.Option(help="DVC stage / dataset (default: the preset's)")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="config override key=value (repeatable)")] = None,
    tune: Annotated[bool, typer.Option("--tune/--no-tune", help="run a Ray Tune search first")] = False,
    tune_space: Annotated[str | None, typer.Option(help="search space YAML (trm/presets/spaces)")] = None,
    workers: Annotated[int, typer.Option(help="Ray Train workers")] = 2,
    ray_address: Annotated[str | None, typer.Option(help="Ray cluster address (default: local Ray)")] = None,
    store: Annotated[str | None, typer.Option(help="store URL (default $TRM_STORE, else ./artifacts)")] = None,
    name: Annotated[str | None, typer.Option(help="model name (default: the preset's run name)")] = None,
    repo_dir: Annotated[str | None, typer.Option(help="project checkout (default: this one)")] = None,
) -> None:
    """Run the retrain flow in this process and print where the model and its card are."""
    with local_prefect_settings():
        summary = retrain(
            preset=preset,
            dataset=dataset,
            overrides=set_ or [],
            workers=workers,
            tune=TuneRequest(space=tune_space) if tune else None,
            store_url=store,
            model_name=name,
            infrastructure=Infrastructure(ray_address=ray_address, repo_dir=repo_dir),
        )
    model = summary.model
    print(
        f"\nPublished model: {model.uri}\nModel card:      {model.card_url}\n"
        f"Training curve:  {model.curve_url}\nTest metrics:    {json.dumps(summary.metrics)}"
    )


def main() -> None:
    """`python -m pipelines.retrain`: Prefect without a server unless PREFECT_API_URL points at one."""
    typer.run(command)


if __name__ == "__main__":
    main()
