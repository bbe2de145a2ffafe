"""Flow `study`: an ablation study through the pipeline (trm/presets/spaces/ablations.yaml).

versioned data (DVC) -> the tune stage (every variant x seed, each trial to its full budget, selection on val) ->
each trial's selected checkpoint tested once and published as a version of the study's model name, with its variant,
seed and Tune run in the manifest -> the report (table, ordering verdicts, time to accuracy, figure) as Prefect
artifacts, in the run folder and, with ``report``, in the checkout (docs/fidelity.md).

    prefect deployment run 'study/ablations'                      # prefect.yaml
    python -m pipelines.study --preset sudoku-9x9-hard --space ablations --report docs/fidelity.md
    python -m pipelines.study --resume sudoku-9x9-hard-ablations-<id>   # continue a killed study

Each run trains under its own Tune run name, ``<study>-<flow run id>``, in ``runs/studies/``; ``resume`` names an
earlier one: its finished trials are not trained again.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Annotated

import typer
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run as current_flow_run
from pydantic import BaseModel, Field

from pipelines.artifacts import artifact_key, embedded_png
from pipelines.plan import Infrastructure, RetrainPlan, TuneRequest, plan_retrain
from pipelines.preflight import preflight
from pipelines.prepare_data import PreparedData, prepare_data
from pipelines.project import local_prefect_settings
from pipelines.publish import publish
from pipelines.train import resolve_config
from pipelines.tune import resolve_space
from pipelines.tune import tune as tune_flow
from trm.atomic import atomic_write_text
from trm.cli.output import OneLineErrors, set_debug
from trm.config import TRMConfig
from trm.distributed.space import SearchSpace
from trm.distributed.train_job import selection_from_report
from trm.distributed.tune import max_concurrency
from trm.errors import UsageError
from trm.store import Manifest, ModelStore, PublishRequest
from trm.study.measure import TrialResult, measure_trial, trial_result
from trm.study.report import StudyReport, figure_beside, write_study_report
from trm.study.run import study_context
from trm.study.trials import StudyTrial, study_trials

STUDY_KEY = "study"  # the manifest's extra: {name, space, variant, seed, tune_run}


class StudyRun(BaseModel):
    """What a study run did (also ``study.json`` in its folder)."""

    name: str
    tune_run: str
    run_dir: str
    models: list[str] = Field(description="NAME:V of every trial, in the report's trial order")
    report: str
    figure: str
    docs_report: str | None = None
    markdown: str


@task(cache_policy=NO_CACHE)
def measure_trial_task(trial: StudyTrial, data_dir: str, work_dir: str) -> TrialResult:
    """Export the trial's val-selected checkpoint and measure it once on the test split."""
    tested = measure_trial(trial, Path(data_dir), Path(work_dir))
    get_run_logger().info(
        "%s seed %d (%s): step %s, val exact %s, test exact %.3f",
        trial.variant,
        trial.seed,
        trial.trial,
        trial.selected_step,
        trial.val_exact,
        tested.test_exact,
    )
    return tested


def _publish_request(
    tested: TrialResult,
    config: TRMConfig,
    prepared: PreparedData,
    repo: Path,
    space_name: str,
    tune_run: str,
    name: str,
) -> PublishRequest:
    trial = tested.trial
    return PublishRequest(
        name=name,
        model_dir=Path(tested.export_dir),
        metrics=tested.metrics,
        selection=selection_from_report(trial.report, config).model_dump(mode="json") if trial.report else None,
        metrics_log=trial.metrics_log if trial.metrics_log.is_file() else None,
        dataset_dir=Path(prepared.data_dir),
        dvc_stage=prepared.stage,
        repo_dir=repo,
        ray_run_name=trial.trial,
        tune_run_name=tune_run,
        tune_trial_name=trial.trial,
        extra={
            STUDY_KEY: {
                "name": name,
                "space": space_name,
                "variant": trial.variant,
                "seed": trial.seed,
                "tune_run": tune_run,
            },
            "prefect_flow_run": str(current_flow_run.get_id() or ""),
        },
    )


def _figure_markdown(figure: Path) -> str:
    return embedded_png("study figure", figure.read_bytes(), f"(figure not embedded: {figure})")


@task(cache_policy=NO_CACHE)
def report_task(
    space: SearchSpace,
    tested: list[TrialResult],
    config: TRMConfig,
    preset: str,
    space_name: str,
    run_dir: Path,
    docs_report: Path | None,
    load_before: float,
) -> tuple[StudyReport, StudyReport | None]:
    """The report in the run folder, and in the checkout when asked (figure in img/ beside it)."""
    context = study_context(
        config,
        space,
        tested,
        preset=preset,
        command=f"python -m pipelines.study --preset {preset} --space {space_name}",
        space_name=space_name,
        load_before=load_before,
        concurrent=max_concurrency(space.search, os.cpu_count() or 1),
    )
    report = write_study_report(space, tested, context, run_dir / "fidelity.md", run_dir / "fidelity.png")
    docs = None
    if docs_report is not None:
        docs = write_study_report(space, tested, context, docs_report, figure_beside(docs_report))
    return report, docs


def _plan(
    preset: str,
    space: str,
    loaded: SearchSpace,
    overrides: list[str] | None,
    store_url: str | None,
    infrastructure: Infrastructure | None,
    run_id: str,
) -> RetrainPlan:
    """The run's inputs checked as a retrain's are (preset, space, store, infrastructure), named after the study."""
    if loaded.study is None:
        raise UsageError(f"space {space!r} has no 'study' block: run it with the retrain flow's tune option instead")
    return plan_retrain(
        preset=preset,
        dataset=None,
        overrides=overrides,
        workers=loaded.search.workers_per_trial,
        tune=TuneRequest(space=space),
        store_url=store_url,
        model_name=loaded.study.name,
        eval_modes=None,
        infrastructure=infrastructure,
        publishing=None,
        run_id=run_id,
    )


def published_trials(store_url: str, name: str, tune_run: str) -> dict[str, Manifest]:
    """The versions of ``name`` already published from the Tune run ``tune_run``, by trial: resuming a study
    publishes each trial once."""
    store = ModelStore.open(store_url)
    manifests = [store.manifest(name, v) for v in store.versions(name)]
    return {
        m.tune_trial_name: m
        for m in manifests
        if m.tune_trial_name and (m.extra.get(STUDY_KEY) or {}).get("tune_run") == tune_run
    }


def _measure_and_publish(
    trials: list[StudyTrial],
    plan: RetrainPlan,
    prepared: PreparedData,
    config: TRMConfig,
    run_dir: Path,
    tune_run: str,
) -> list[TrialResult]:
    """Each trial tested once, then published as the next version of the study's name (unless a run of the same
    Tune run already did: a resumed study reads those numbers from the manifests)."""
    space = plan.tune.space if plan.tune and plan.tune.space else ""
    done = published_trials(plan.store_url, plan.model_name, tune_run)
    measured = []
    for trial in trials:
        if trial.trial in done:  # a resumed study: this trial was tested and published before
            version = done[trial.trial]
            measured.append(trial_result(trial, version.metrics, "", f"{version.name}:{version.version}"))
            continue
        result = measure_trial_task(trial, prepared.data_dir, str(run_dir / "tested" / trial.trial))
        request = _publish_request(result, config, prepared, plan.repo_dir, space, tune_run, plan.model_name)
        published = publish(request, store_url=plan.store_url)
        measured.append(result.model_copy(update={"model": f"{published.name}:{published.version}"}))
    return measured


@flow(name="study", log_prints=True)
def study(
    preset: str = "sudoku-9x9-hard",
    space: str = "ablations",
    overrides: list[str] | None = None,
    store_url: str | None = None,
    infrastructure: Infrastructure | None = None,
    resume: str | None = None,
    report: str | None = None,
) -> StudyRun:
    """Run the study ``space`` (a search space with a ``study`` block) on ``preset``: train every trial, test each
    once, publish each under the study's name to ``store_url``, and write the report (``report``: also to this
    path, relative to the checkout, e.g. docs/fidelity.md). ``resume`` continues an earlier Tune run by name."""
    loaded = resolve_space(space, preset, None)
    run_id = str(current_flow_run.get_id() or uuid.uuid4())[:8]
    plan = _plan(preset, space, loaded, overrides, store_url, infrastructure, run_id)
    preflight(plan, say=get_run_logger().info)
    load_before = os.getloadavg()[0]
    prepared = prepare_data(plan.dataset, remote=plan.where.dvc_remote, repo_dir=str(plan.repo_dir))
    tune_run = resume or f"{plan.model_name}-{run_id}"
    studies = plan.repo_dir / "runs" / "studies"
    run_dir = studies / tune_run
    tuned = tune_flow(
        preset,
        str(Path(prepared.data_dir).parent),
        str(run_dir),
        overrides=plan.overrides,
        space=space,
        ray_address=plan.where.ray_address,
        ray_storage=plan.where.ray_storage or str(studies / "ray"),
        run_name=tune_run,
        results_dir=str(run_dir),
        resume=resume is not None,
    )
    trials = study_trials(tuned.trials, Path(tuned.trials_dir))
    config = resolve_config(preset, plan.overrides, Path(prepared.data_dir).parent, run_dir)
    measured = _measure_and_publish(trials, plan, prepared, config, run_dir, tune_run)
    docs_path = plan.repo_dir / report if report else None
    run_report, docs = report_task(loaded, measured, config, preset, space, run_dir, docs_path, load_before)
    create_markdown_artifact(
        f"{run_report.markdown}\n\n{_figure_markdown(Path(run_report.figure_path))}\n",
        key=artifact_key(plan.model_name, "study"),
        description=f"study {tune_run}: {run_report.summary.ordering_verdict}",
    )
    outcome = StudyRun(
        name=plan.model_name,
        tune_run=tune_run,
        run_dir=str(run_dir),
        models=[t.model or "" for t in measured],
        report=run_report.markdown_path,
        figure=run_report.figure_path,
        docs_report=docs.markdown_path if docs else None,
        markdown=run_report.markdown,
    )
    atomic_write_text(run_dir / "study.json", outcome.model_dump_json(indent=2, exclude={"markdown"}))
    print(f"study {tune_run}: {len(measured)} trials published as {plan.model_name}; report {outcome.report}")
    return outcome


cli = typer.Typer(cls=OneLineErrors, add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False)


@cli.callback(cls=OneLineErrors, invoke_without_command=True)
def command(
    preset: Annotated[str, typer.Option(help="training preset (trm/presets/<name>.yaml)")] = "sudoku-9x9-hard",
    space: Annotated[str, typer.Option(help="study space (trm/presets/spaces/<name>.yaml)")] = "ablations",
    set_: Annotated[list[str] | None, typer.Option("--set", help="config override key=value (repeatable)")] = None,
    ray_address: Annotated[str | None, typer.Option(help="Ray cluster address (default: local Ray)")] = None,
    store: Annotated[str | None, typer.Option(help="store URL (default $TRM_STORE, else ./artifacts)")] = None,
    resume: Annotated[str | None, typer.Option(help="continue this earlier Tune run of the study")] = None,
    report: Annotated[str | None, typer.Option(help="also write the report here, e.g. docs/fidelity.md")] = None,
    debug: Annotated[bool, typer.Option("--debug", help="show tracebacks")] = False,
) -> None:
    """Run an ablation study through the pipeline without a Prefect server."""
    set_debug(debug)
    with local_prefect_settings():
        study(
            preset=preset,
            space=space,
            overrides=set_,
            store_url=store,
            infrastructure=Infrastructure(ray_address=ray_address),
            resume=resume,
            report=report,
        )


if __name__ == "__main__":
    cli()
