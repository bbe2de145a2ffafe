"""Flow `retrain`: versioned data -> Ray training (or a Tune search) -> evaluation -> publish, with artifacts.

Run it from a deployment (`prefect deployment run 'retrain/smoke'`, see prefect.yaml) or directly:

    python -m pipelines.retrain --preset smoke                 # local Ray head, Prefect without a server, ./artifacts

The data is named by its DVC hash (an unchanged stage is not rebuilt), training on CPU is deterministic for a fixed
preset, seed and worker count, and the published manifest records every input with their fingerprint, so two runs
with the same code and parameters publish the same data hash, weights and metrics, and a third is "up to date".
Training is a Ray job named by the inputs (pipelines/train.py), so it outlives a killed flow. Each run writes
``runs/<name>-<job key>/retrain.json`` (a skipped run or a search: ``runs/<name>-<flow run id>/``).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run as current_flow_run
from pydantic import BaseModel, Field

from pipelines.artifacts import artifact_key, record_run_artifacts
from pipelines.evaluate import EvalOutcome, evaluate
from pipelines.fingerprint import FINGERPRINT_KEY, RunInputs, run_inputs, up_to_date_version
from pipelines.plan import Infrastructure, PublishOptions, RetrainPlan, TuneRequest, jobs_url, now, plan_retrain
from pipelines.preflight import preflight
from pipelines.prepare_data import PreparedData, prepare_data
from pipelines.project import local_prefect_settings
from pipelines.publish import PublishedModel, publish
from pipelines.rehearsal import (
    RehearsalBudget,
    RehearsalReport,
    full_run_flops,
    gpu_projection,
    rehearsal_overrides,
    training_rate,
)
from pipelines.reproduction import COMPARISON_KEY, REPRODUCES_KEY, check_same_config, check_same_data, compare
from pipelines.stages import StageMeter, StageUsage
from pipelines.train import TrainOutcome, train
from pipelines.tune import tune as tune_flow
from trm.atomic import atomic_write_json
from trm.cli.output import OneLineErrors, set_debug
from trm.config import TRMConfig, load_config
from trm.data.dataset_folder import read_metadata
from trm.distributed.head import head_processes
from trm.model.flops import supervision_step_flops
from trm.store import Manifest, ModelRef, ModelStore, PublishRequest, redact
from trm.store.card import describe_selection


class RetrainSummary(BaseModel):
    """What a retrain did (also written to ``retrain.json`` in the run's folder)."""

    model: PublishedModel
    data: PreparedData
    train: TrainOutcome | None  # None when the run was skipped as up to date
    metrics: dict[str, float]
    throughput: dict[str, float] = Field(default_factory=dict)
    eval_report: str = ""
    run_dir: str
    fingerprint: str = ""  # sha256 of the run's inputs (pipelines/fingerprint.py)
    up_to_date: str | None = None  # NAME:V already made from the same inputs: nothing was trained
    stages: dict[str, StageUsage] = Field(default_factory=dict)  # wall time and peak RAM per stage
    rehearsal: RehearsalReport | None = None


def training_job_key(plan: RetrainPlan, inputs: RunInputs) -> str:
    """The Ray job (and run folder) of this training: the same inputs into the same store before the same latest
    version give the same key, so a flow run started after a killed one finds its training. A checkout with
    uncommitted changes has no identity: its key is its own flow run's."""
    latest = max(ModelStore.open(plan.store_url).versions(plan.model_name), default=0)
    parts = [inputs.sha256(), plan.store_url, str(latest), "" if inputs.identifiable else plan.run_dir.name]
    return f"{plan.model_name}-{hashlib.sha256('|'.join(parts).encode()).hexdigest()[:12]}"


def _in_job_folder(plan: RetrainPlan, inputs: RunInputs) -> RetrainPlan:
    """One training job works in a folder named by its key, so a later flow run finds it (a search keeps the flow
    run's folder)."""
    if plan.tune is not None:
        return plan
    return plan.model_copy(update={"run_dir": plan.repo_dir / "runs" / training_job_key(plan, inputs)})


def _training(plan: RetrainPlan, prepared: PreparedData) -> tuple[TrainOutcome, str | None, str | None]:
    """(outcome, Tune run name, best trial) of a Ray Train job or, with ``plan.tune``, a Tune search."""
    data_root, where = str(Path(prepared.data_dir).parent), plan.where
    if plan.tune is None:
        trained = train(
            plan.preset,
            data_root,
            str(plan.run_dir),
            overrides=plan.training_overrides,
            ray_address=where.ray_address,
            workers=plan.workers,
            ray_storage=where.ray_storage,
            job_key=f"trm-{plan.run_dir.name}",
            repo_dir=str(plan.repo_dir),
            ray_jobs_url=jobs_url(where),
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
    tune_names: tuple[str | None, str | None],
    evaluated: EvalOutcome,
    inputs: RunInputs,
) -> PublishRequest:
    """What the store records: the export, its test metrics and every input that made it (with their fingerprint,
    which a later run compares to skip an unchanged retrain)."""
    tune_run, tune_trial = tune_names
    return PublishRequest(
        name=plan.model_name,
        model_dir=Path(trained.export_dir),
        metrics=evaluated.metrics,
        selection=trained.selection,
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
            "rehearsal": plan.rehearse,
            "prefect_flow_run": str(current_flow_run.get_id() or ""),
            FINGERPRINT_KEY: {"sha256": inputs.sha256(), "inputs": inputs.model_dump(mode="json", exclude={"config"})},
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
        "selected": describe_selection(trained.selection),
        "model": published.uri,
        **{f"throughput {k}": f"{v:.1f}" for k, v in evaluated.throughput.items() if "per_second" in k},
    }


def _rehearsal_plan(plan: RetrainPlan, prepared: PreparedData) -> tuple[RetrainPlan, dict[str, float] | None]:
    """With ``plan.rehearse``: the rehearsal's budget, put before the user's own overrides (which still win), and the
    FLOPs of the full run it stands for (the preset as given, on the built data); unchanged otherwise."""
    if not plan.rehearse:
        return plan, None
    config = load_config(plan.preset, plan.overrides)
    metadata = read_metadata(Path(prepared.data_dir))
    budget = rehearsal_overrides(config, metadata, plan.workers, RehearsalBudget())
    get_run_logger().info("rehearsal of %s: %s", plan.preset, " ".join(budget))
    return plan.model_copy(update={"budget_overrides": budget}), full_run_flops(config, metadata)


def _rehearsal_report(
    plan: RetrainPlan, full: dict[str, float], trained: TrainOutcome, evaluated: EvalOutcome, meter: StageMeter
) -> RehearsalReport:
    """Stage costs measured here and the projection of the ``full`` run."""
    rate = training_rate(trained.metrics_log)
    rehearsed = TRMConfig.model_validate(trained.config) if trained.config else None
    achieved = None
    if rate and rehearsed is not None:
        batch = rehearsed.train.global_batch_size
        achieved = rate * batch * supervision_step_flops(rehearsed.model).training / 1e9
    return RehearsalReport(
        preset=plan.preset,
        workers=plan.workers,
        overrides=plan.budget_overrides,
        stages=dict(meter.stages),
        train_steps_per_second=rate,
        cpu_gflops_achieved=achieved,
        full_run=full,
        projection=gpu_projection(full),
        metrics=evaluated.metrics,
        model="",
    )


@flow(name="retrain", log_prints=True)
def retrain(
    preset: str = "smoke",
    dataset: str | None = None,
    overrides: list[str] | None = None,
    workers: Annotated[int, Field(ge=1)] = 2,
    tune: TuneRequest | None = None,
    store_url: str | None = None,
    model_name: str | None = None,
    eval_modes: list[str] | None = None,
    infrastructure: Infrastructure | None = None,
    publishing: PublishOptions | None = None,
    rehearse: bool = False,
    force: bool = False,
    reproduces: str | None = None,
) -> RetrainSummary:
    """Retrain ``preset`` (+ dotted ``overrides``) on ``dataset`` (default: the preset's) with ``workers`` Ray
    workers, or run the ``tune`` search; evaluate on the test split and publish as ``model_name`` (default: the
    preset's run name) to ``store_url`` (default $TRM_STORE, else <checkout>/artifacts). ``rehearse`` runs the
    preset's real data and model through every stage on a CPU-sized budget (pipelines/rehearsal.py).

    If the latest version was made from the same inputs (pipelines/fingerprint.py) nothing is trained, unless
    ``force``; ``reproduces`` (NAME:V, from `trm models reproduce`) always trains and is recorded in the manifest."""
    plan = plan_retrain(
        preset=preset,
        dataset=dataset,
        overrides=overrides,
        workers=workers,
        tune=tune,
        store_url=store_url,
        model_name=model_name,
        eval_modes=eval_modes,
        infrastructure=infrastructure,
        publishing=publishing,
        run_id=str(current_flow_run.get_id() or uuid.uuid4())[:8],
        rehearse=rehearse,
        reproduces=reproduces,
    )
    meter = StageMeter(also=head_processes)  # training runs on the local head, outside this process tree
    with meter.stage("preflight"):
        preflight(plan, say=get_run_logger().info)
    with meter.stage("data"):
        prepared = prepare_data(plan.dataset, remote=plan.where.dvc_remote, repo_dir=str(plan.repo_dir))
    _log_data(prepared)
    original = _original(plan, prepared)
    plan.timestamps["data_ready"] = now()
    plan, full_run = _rehearsal_plan(plan, prepared)
    inputs = _run_inputs(plan, prepared)
    current = None if force or original else _up_to_date(plan, inputs)
    if current is not None:
        return _skip(plan, prepared, inputs, current, meter)
    plan = _in_job_folder(plan, inputs)
    with meter.stage("train"):
        trained, tune_run, tune_trial = _training(plan, prepared)
    plan.timestamps["training_finished"] = now()
    with meter.stage("evaluate"):
        evaluated = evaluate(
            trained.export_dir, prepared.data_dir, out_dir=str(plan.run_dir / "eval"), modes=plan.eval_modes
        )
    reproduction = _compare(original, trained, evaluated)
    return _finish(plan, prepared, trained, (tune_run, tune_trial), evaluated, meter, full_run, inputs, reproduction)


def _original(plan: RetrainPlan, prepared: PreparedData) -> Manifest | None:
    """The version this run reproduces (None for an ordinary retrain); its data must be the data just prepared."""
    if not plan.reproduces:
        return None
    store = ModelStore.open(plan.store_url)
    original = store.manifest(ModelRef.parse(plan.reproduces).name, store.resolve(plan.reproduces))
    check_same_data(original, prepared.md5)
    return original


def _compare(original: Manifest | None, trained: TrainOutcome, evaluated: EvalOutcome) -> dict[str, Any]:
    """For a reproduction: what the manifest records about it (the original and how this run compares)."""
    if original is None:
        return {}
    check_same_config(original, trained.config)
    comparison = compare(original, Path(trained.export_dir), evaluated.metrics)
    get_run_logger().info("reproduction of %s: %s", comparison.original, comparison.verdict(tolerance=0.0))
    return {REPRODUCES_KEY: comparison.original, COMPARISON_KEY: comparison.model_dump(mode="json")}


def _run_inputs(plan: RetrainPlan, prepared: PreparedData) -> RunInputs:
    kind = {
        "tune": plan.tune.model_dump(mode="json") if plan.tune else None,
        "rehearse": plan.rehearse,
        "eval_modes": plan.eval_modes,
    }
    return run_inputs(plan.repo_dir, plan.preset, plan.training_overrides, prepared.md5, plan.workers, kind)


def _up_to_date(plan: RetrainPlan, inputs: RunInputs) -> PublishedModel | None:
    """The latest version of the model if it was made from these inputs."""
    if not inputs.identifiable:
        get_run_logger().info("the checkout has uncommitted changes: its code has no identity, so this run retrains")
        return None
    store = ModelStore.open(plan.store_url)
    current = up_to_date_version(store, plan.model_name, inputs)
    return PublishedModel.of(store, current) if current is not None else None


def _skip(
    plan: RetrainPlan, prepared: PreparedData, inputs: RunInputs, current: PublishedModel, meter: StageMeter
) -> RetrainSummary:
    """Nothing changed since ``current`` was published: say so (log and artifact) instead of training again."""
    reference = f"{current.name}:{current.version}"
    message = (
        f"up to date: {reference} was made from the same inputs (fingerprint {inputs.sha256()[:12]}: commit "
        f"{(inputs.code_commit or '')[:12]}, data md5 {prepared.md5}, {plan.workers} workers); nothing trained. "
        "Pass force=True to retrain anyway."
    )
    get_run_logger().info(message)
    create_markdown_artifact(
        f"# up to date: {reference}\n\n{message}\n\nModel: `{current.uri}`\n",
        key=artifact_key("up-to-date", plan.model_name),
        description=f"up to date: {reference}",
    )
    summary = RetrainSummary(
        model=current,
        data=prepared,
        train=None,
        metrics=current.metrics,
        run_dir=str(plan.run_dir),
        stages=dict(meter.stages),
        fingerprint=inputs.sha256(),
        up_to_date=reference,
    )
    atomic_write_json(plan.run_dir / "retrain.json", summary.model_dump(mode="json"))
    print(message)
    return summary


def _log_data(prepared: PreparedData) -> None:
    rebuilt = f"rebuilt ({prepared.stages_ran})" if prepared.stages_ran else "unchanged"
    get_run_logger().info("data %s: md5 %s, %s", prepared.stage, prepared.md5, rebuilt)


def _finish(
    plan: RetrainPlan,
    prepared: PreparedData,
    trained: TrainOutcome,
    tune_names: tuple[str | None, str | None],
    evaluated: EvalOutcome,
    meter: StageMeter,
    full_run: dict[str, float] | None,
    inputs: RunInputs,
    reproduction: dict[str, Any],
) -> RetrainSummary:
    """Publish (a rehearsal, i.e. with ``full_run``, with its report in the manifest), record artifacts, write
    retrain.json."""
    tune_run, _ = tune_names
    request = _publish_request(plan, prepared, trained, tune_names, evaluated, inputs)
    request.extra.update(reproduction)
    rehearsal = _rehearsal_report(plan, full_run, trained, evaluated, meter) if full_run is not None else None
    if rehearsal is not None:
        request.extra["rehearsal"] = rehearsal.model_dump(mode="json", exclude={"model", "metrics"})
    options = plan.publishing
    with meter.stage("publish"):
        published = publish(
            request, store_url=plan.store_url, retries=options.retries, retry_delay_s=options.retry_delay_s
        )
    facts = _facts(plan, prepared, trained, tune_run, published, evaluated)
    record_run_artifacts(published, evaluated.metrics, facts, plan.store_url)
    if rehearsal is not None:
        rehearsal = rehearsal.model_copy(update={"stages": dict(meter.stages), "model": published.uri})
        atomic_write_json(plan.run_dir / "rehearsal.json", rehearsal.model_dump(mode="json"))
        create_markdown_artifact(rehearsal.markdown(), key=artifact_key("rehearsal", plan.model_name))
    summary = RetrainSummary(
        model=published,
        data=prepared,
        train=trained,
        metrics=evaluated.metrics,
        throughput=evaluated.throughput,
        eval_report=evaluated.report_path,
        run_dir=str(plan.run_dir),
        stages=dict(meter.stages),
        rehearsal=rehearsal,
        fingerprint=inputs.sha256(),
    )
    atomic_write_json(plan.run_dir / "retrain.json", summary.model_dump(mode="json", exclude={"train": {"config"}}))
    print(f"published {published.uri}\n  model card: {published.card_url}\n  training curve: {published.curve_url}")
    return summary


class SelectRule(StrEnum):
    best = "best"
    last = "last"


cli = typer.Typer(cls=OneLineErrors, add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False)


@cli.callback(cls=OneLineErrors, invoke_without_command=True)
def command(
    preset: Annotated[str, typer.Option(help="training preset (trm/presets/<name>.yaml)")] = "smoke",
    dataset: Annotated[str | None, typer.Option(help="DVC stage / dataset (default: the preset's)")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="config override key=value (repeatable)")] = None,
    tune: Annotated[bool, typer.Option("--tune/--no-tune", help="run a Ray Tune search first")] = False,
    tune_space: Annotated[str | None, typer.Option(help="search space YAML (trm/presets/spaces)")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Ray Train workers")] = 2,
    ray_address: Annotated[str | None, typer.Option(help="Ray cluster address (default: local Ray)")] = None,
    store: Annotated[str | None, typer.Option(help="store URL (default $TRM_STORE, else ./artifacts)")] = None,
    name: Annotated[str | None, typer.Option(help="model name (default: the preset's run name)")] = None,
    repo_dir: Annotated[str | None, typer.Option(help="project checkout (default: this one)")] = None,
    select: Annotated[
        SelectRule | None, typer.Option(help="hand on the best validation step (default) or the last step")
    ] = None,
    rehearse: Annotated[
        bool, typer.Option("--rehearse", help="dress rehearsal: real data and model, CPU-sized budget, projection")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="retrain even when the latest version was made from the same inputs")
    ] = False,
    reproduces: Annotated[
        str | None, typer.Option(help="NAME:V this run reproduces (set by `trm models reproduce`)", hidden=True)
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="show the traceback of a failure")] = False,
) -> None:
    """Run the retrain flow in this process (Prefect without a server unless PREFECT_API_URL points at one) and
    print where the model and its card are. Parameters are checked, and the store, the DVC remote and the Ray
    cluster preflighted, before Prefect starts."""
    set_debug(debug)
    request: dict[str, Any] = {
        "preset": preset,
        "dataset": dataset,
        "overrides": [*(set_ or []), *([f"eval.select={select.value}"] if select else [])],
        "workers": workers,
        "tune": TuneRequest(space=tune_space) if tune else None,
        "store_url": store,
        "model_name": name,
        "eval_modes": None,
        "infrastructure": Infrastructure(ray_address=ray_address, repo_dir=repo_dir),
        "publishing": None,
        "rehearse": rehearse,
    }
    plan = plan_retrain(**request, run_id="preflight")
    preflight(plan)
    with local_prefect_settings():
        summary = retrain(**request, force=force, reproduces=reproduces)
    _print_summary(summary)


def _print_summary(summary: RetrainSummary) -> None:
    model = summary.model
    if summary.up_to_date:
        print(
            f"\nUp to date:      {summary.up_to_date} (nothing trained; --force retrains)\n"
            f"Model card:      {model.card_url}"
        )
        return
    selection = summary.train.selection if summary.train else None
    print(
        f"\nPublished model: {model.uri}\nModel card:      {model.card_url}\n"
        f"Training curve:  {model.curve_url}\nSelected:        {describe_selection(selection)}\n"
        f"Test metrics:    {json.dumps(summary.metrics)}"
    )
    if summary.rehearsal is not None:
        print(f"\n{summary.rehearsal.markdown()}\nReport:          {summary.run_dir}/rehearsal.json")


def main() -> None:
    """`python -m pipelines.retrain`: one-line errors (exit 2 for a wrong parameter, 1 for a failed run)."""
    cli()


if __name__ == "__main__":
    main()
