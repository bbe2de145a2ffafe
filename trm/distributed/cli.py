"""`trm tune` and the Ray half of `trm train --ray`: thin typer glue over train_job / tune.

Why `train_on_ray` is a plain function: `trm train` (trm/train/cli.py) owns the command and its options; with
``--ray`` it hands the loaded config here, so the Ray import stays out of the non-Ray path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

if TYPE_CHECKING:  # trm.config pulls in torch: keep it out of `trm --help`
    from trm.config import TRMConfig


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def train_on_ray(
    config: TRMConfig,
    *,
    address: str | None = None,
    workers: int = 1,
    storage: str | None = None,
    name: str | None = None,
    cpus_per_worker: float = 1.0,
    max_failures: int = 2,
    summary_json: Path | None = None,
):
    """Run ``config`` as a Ray Train job and print where its checkpoints went. Storage defaults to
    ``run.output_dir/ray`` so a repeated command with the same run name resumes."""
    from trm.distributed.train_job import run_ray_training

    storage = storage or str(Path(config.run.output_dir).expanduser() / "ray")
    result = run_ray_training(config, address=address, workers=workers, storage=storage, name=name,
                              cpus_per_worker=cpus_per_worker, max_failures=max_failures)
    typer.echo(f"ray run: {result.run_uri}  steps: {result.steps}/{result.total_steps}  workers: {result.workers}  "
               f"seconds: {result.seconds:.1f}" + (f"  (restored from step {result.restored_from_step})"
                                                   if result.restored else ""))
    if "eval_exact_accuracy" in result.metrics:
        typer.echo(f"eval: exact_accuracy {result.metrics['eval_exact_accuracy']:.4f}  "
                   f"accuracy {result.metrics.get('eval_accuracy', float('nan')):.4f}")
    typer.echo(f"best checkpoint: {result.best_checkpoint}")
    if summary_json is not None:
        _write_json(summary_json, result.to_json())
    return result


def _write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1, sort_keys=True, default=str))
    tmp.replace(path)


def tune_command(
    preset: str = typer.Option(..., "--preset", "-p", help="preset name (trm/presets/*.yaml) or a YAML file"),
    space: str = typer.Option(..., "--space", help="search space name (trm/presets/spaces/*.yaml) or a YAML file"),
    overrides: Optional[list[str]] = typer.Option(None, "--set", "-s", help="dotted override, e.g. train.seed=1"),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster address (default: start a local Ray)"),
    storage: Optional[str] = typer.Option(None, "--storage", help="folder or s3://bucket/prefix for results"),
    name: Optional[str] = typer.Option(None, "--name", help="experiment name (default <run.name>-tune)"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="folder for results.csv / results.md / best.json"),
) -> None:
    """Search hyper-parameters with Ray Tune (ASHA); each trial is a Ray Train run."""
    from trm.config import ConfigError, load_config
    from trm.distributed.tune import load_space, run_tune

    try:
        config = load_config(preset, list(overrides or []))
        search_space = load_space(space)
    except ConfigError as err:
        _fail(str(err))
    storage = storage or str(Path(config.run.output_dir).expanduser() / "ray")
    result = run_tune(config, search_space, address=address, storage=storage, name=name, out_dir=out)
    typer.echo(Path(result.table_markdown).read_text() if result.table_markdown else "no trials")
    typer.echo(f"{len(result.trials)} trials, {result.stopped_early} stopped early by ASHA, {result.seconds:.0f} s")
    typer.echo(f"best trial: {result.best_trial} {result.best_params}")
    typer.echo(f"best checkpoint: {result.best_checkpoint}")
    if result.table_csv:
        _write_json(Path(result.table_csv).parent / "best.json", result.to_json())


def register(app: typer.Typer) -> None:
    """Add `tune` to the root `trm` command."""
    app.command("tune")(tune_command)
