"""Flow `retrain`: versioned data -> Ray training (or a Tune search) -> evaluation -> publish, with artifacts.

Run it from a deployment (`prefect deployment run 'retrain/smoke'`, see prefect.yaml) or directly:

    python -m pipelines.retrain --preset smoke                 # local Ray, Prefect without a server, ./artifacts

Reproducibility: the data is named by its DVC hash (an unchanged stage is not rebuilt), training on CPU is
deterministic for a fixed preset, seed and worker count, and the published manifest records every input, so two
runs with the same code and parameters publish the same data hash and the same metrics, and
``trm.store.diff_manifests`` says what differs otherwise. Each run writes ``runs/<name>-<run id>/retrain.json``.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

import typer
from prefect import flow, get_run_logger
from prefect.runtime import flow_run as current_flow_run

from pipelines.artifacts import record_run_artifacts
from pipelines.evaluate import evaluate
from pipelines.prepare_data import check_build_params, prepare_data
from pipelines.project import project_dir
from pipelines.publish import DEFAULT_RETRIES, DEFAULT_RETRY_DELAY_S, publish
from pipelines.train import train
from trm.config import load_config
from trm.store.location import redact


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _write_json(path: Path, body: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.write_text(json.dumps(body, indent=2, sort_keys=True, default=str) + "\n")
    tmp.replace(path)


@flow(name="retrain", log_prints=True)
def retrain(
    preset: str = "smoke",
    dataset: str | None = None,
    overrides: list[str] | None = None,
    tune: bool = False,
    tune_space: str | None = None,
    tune_trials: int | None = None,
    ray_address: str | None = None,
    workers: int = 2,
    store_url: str | None = None,
    model_name: str | None = None,
    dvc_remote: str | None = None,
    repo_dir: str | None = None,
    ray_storage: str | None = None,
    aliases: list[str] | None = None,
    eval_modes: list[str] | None = None,
    publish_retries: int = DEFAULT_RETRIES,
    publish_retry_delay_s: float = DEFAULT_RETRY_DELAY_S,
) -> dict[str, Any]:
    """Retrain ``preset`` (+ ``overrides``, dotted ``key=value``) on ``dataset`` (default: the preset's) and publish
    it as ``model_name`` (default: the preset's run name) to ``store_url`` (default $TRM_STORE, else
    <checkout>/artifacts). ``tune`` runs a Ray Tune search (``tune_space``: a YAML under trm/presets/spaces,
    default the one named like the preset; ``tune_trials``: samples per grid point) and publishes its best trial.
    ``ray_address`` None starts a local Ray; ``dvc_remote`` None uses the project's default remote if any.
    Returns the run summary (also written to ``runs/<name>-<run id>/retrain.json``)."""
    logger = get_run_logger()
    repo = project_dir(repo_dir)
    user_overrides = list(overrides or [])
    if dataset:
        user_overrides.append(f"data.name={dataset}")
    base = load_config(preset, user_overrides)  # fail fast on a bad preset/override, before any work
    stage = base.data.name
    name = model_name or base.run.name
    store_url = store_url or os.environ.get("TRM_STORE") or str(repo / "artifacts")
    run_id = str(current_flow_run.get_id() or uuid.uuid4())[:8]
    run_dir = repo / "runs" / f"{name}-{run_id}"
    started = _now()

    prepared = prepare_data(stage, remote=dvc_remote, repo_dir=str(repo))
    check_build_params(prepared, dict(base.data.build))
    logger.info("data %s: md5 %s, %s", stage, prepared.md5,
                f"rebuilt ({prepared.stages_ran})" if prepared.stages_ran else "unchanged (dvc repro ran nothing)")
    data_ready = _now()

    tune_run_name = tune_trial_name = None
    if tune:
        from pipelines.tune import tune as tune_flow

        tuned = tune_flow(preset, str(Path(prepared.data_dir).parent), str(run_dir), overrides=user_overrides,
                          space=tune_space, trials=tune_trials, ray_address=ray_address, ray_storage=ray_storage)
        trained, tune_run_name, tune_trial_name = tuned.best, tuned.run_name, tuned.best_trial
    else:
        trained = train(preset, str(Path(prepared.data_dir).parent), str(run_dir), overrides=user_overrides,
                        ray_address=ray_address, workers=workers, ray_storage=ray_storage)
    trained_at = _now()

    evaluated = evaluate(trained.export_dir, prepared.data_dir, out_dir=str(run_dir / "eval"), modes=eval_modes)

    published = publish(
        trained.export_dir, name, store_url=store_url, metrics=evaluated.metrics, metrics_log=trained.metrics_log,
        dataset_dir=prepared.data_dir, dvc_stage=stage, repo_dir=str(repo), ray_run_name=trained.run_name,
        tune_run_name=tune_run_name, tune_trial_name=tune_trial_name, aliases=aliases,
        timestamps={"started": started, "data_ready": data_ready, "training_finished": trained_at},
        extra={"preset": preset, "overrides": user_overrides, "workers": workers, "tune": tune,
               "prefect_flow_run": str(current_flow_run.get_id() or "")},
        retries=publish_retries, retry_delay_s=publish_retry_delay_s,
    )

    facts = {
        "dataset": stage, "data md5 (dvc.lock)": prepared.md5,
        "dvc stages run": ", ".join(prepared.stages_ran) or "none (up to date)",
        "ray run": trained.run_name, "ray storage": redact(trained.storage), "workers": workers,
        "tune run": tune_run_name or "-", "model": published.uri,
        **{f"throughput {k}": f"{v:.1f}" for k, v in evaluated.throughput.items() if "per_second" in k},
    }
    record_run_artifacts(published, evaluated.metrics, facts, store_url)
    summary = {
        "model": published.model_dump(), "data": prepared.model_dump(),
        "train": trained.model_dump(exclude={"config"}), "metrics": evaluated.metrics,
        "throughput": evaluated.throughput, "eval_report": evaluated.report_path, "run_dir": str(run_dir),
    }
    _write_json(run_dir / "retrain.json", summary)
    print(f"published {published.uri}\n  model card: {published.card_url}\n  training curve: {published.curve_url}")
    return summary


def main() -> None:
    """`python -m pipelines.retrain`: run the retrain flow in this process (Prefect without a server unless
    PREFECT_API_URL points at one) and print where the model and its card are."""

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
        summary = retrain(preset=preset, dataset=dataset, overrides=set_ or [], tune=tune, tune_space=tune_space,
                          workers=workers, ray_address=ray_address, store_url=store, model_name=name,
                          repo_dir=repo_dir)
        model = summary["model"]
        print(f"\nPublished model: {model['uri']}\nModel card:      {model['card_url']}\n"
              f"Training curve:  {model['curve_url']}\nTest metrics:    {json.dumps(summary['metrics'])}")

    typer.run(command)


if __name__ == "__main__":
    main()
