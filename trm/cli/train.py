"""`trm train` (one process, or a Ray Train job with --ray) and `trm import-official`."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from trm.cli.output import fail
from trm.config import ConfigError, TRMConfig, load_config


class SelectRule(StrEnum):
    best = "best"
    last = "last"


PresetOption = Annotated[str, typer.Option("--preset", "-p", help="preset name (trm/presets/*.yaml) or a YAML file")]
SetOption = Annotated[list[str] | None, typer.Option("--set", "-s", help="dotted override, e.g. train.lr=3e-4")]


def load_preset(preset: str, overrides: list[str]) -> TRMConfig:
    try:
        return load_config(preset, overrides)
    except ConfigError as err:
        fail(str(err))


def train_command(
    preset: PresetOption,
    overrides: SetOption = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="run folder (default run.output_dir/run.name)")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="continue from the latest checkpoint in the run folder")
    ] = False,
    device: Annotated[
        str | None, typer.Option("--device", help="override train.device (cpu, cuda, cuda:1 ...)")
    ] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="show a progress bar")] = True,
    ray: Annotated[bool, typer.Option("--ray", help="run as a Ray Train job (local Ray started on demand)")] = False,
    address: Annotated[str | None, typer.Option("--address", help="Ray cluster address (with --ray)")] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="data-parallel Ray workers (with --ray)")] = 1,
    storage: Annotated[
        str | None, typer.Option("--storage", help="Ray storage: a folder or s3://bucket/prefix")
    ] = None,
    select: Annotated[
        SelectRule | None, typer.Option("--select", help="export the best validation step (default) or the last")
    ] = None,
) -> None:
    """Train a TRM from a preset; builds the dataset first if it is missing. With --ray, the same training runs
    as a Ray Train job on N workers; repeating the command with the same run name resumes it."""
    sets = list(overrides or []) + ([f"eval.select={select.value}"] if select else [])
    if out is not None:
        sets += [f"run.output_dir={out.parent}", f"run.name={out.name}"]
    config = load_preset(preset, sets)
    if ray:
        _train_on_ray(config, address=address, workers=workers, storage=storage)
        return
    if address is not None or workers != 1 or storage is not None:
        fail("--address, --workers and --storage need --ray")
    from trm.evaluate.training import local_run_hooks  # lazy: torch stays out of `trm --help`
    from trm.store.card import describe_selection  # lazy: as above
    from trm.train.loop import train  # lazy: as above

    try:
        result = train(config, hooks=local_run_hooks(config, resume), device=device, progress=progress)
    except (FileNotFoundError, ValueError) as err:  # bad dataset / config combinations, named by the message
        fail(str(err))
    typer.echo(f"run folder: {result.run_dir}  steps: {result.steps}  seconds: {result.seconds:.1f}")
    for mode, summary in result.last_eval.items():
        typer.echo(
            f"eval[{mode}] on {config.eval.split}: exact_accuracy {summary['exact_accuracy']:.4f}  "
            f"accuracy {summary['accuracy']:.4f}"
        )
    if result.selection is not None:
        typer.echo(f"selected: {describe_selection(result.selection.model_dump())}")
    if result.export_dir is not None:
        typer.echo(f"exported model: {result.export_dir}")


def _train_on_ray(config: TRMConfig, *, address: str | None, workers: int, storage: str | None) -> None:
    """Run ``config`` as a Ray Train job; storage defaults to ``run.output_dir/ray`` so that repeating the command
    with the same run name resumes."""
    from trm.distributed.train_job import run_ray_training  # lazy: importing ray costs seconds

    storage = storage or str(Path(config.run.output_dir).expanduser() / "ray")
    result = run_ray_training(config, address=address, workers=workers, storage=storage)
    restored = f"  (restored from step {result.restored_from_step})" if result.restored else ""
    typer.echo(
        f"ray run: {result.run_uri}  steps: {result.steps}/{result.total_steps}  workers: {result.workers}  "
        f"seconds: {result.seconds:.1f}{restored}"
    )
    if "eval_exact_accuracy" in result.metrics:
        typer.echo(
            f"eval: exact_accuracy {result.metrics['eval_exact_accuracy']:.4f}  "
            f"accuracy {result.metrics.get('eval_accuracy', float('nan')):.4f}"
        )
    typer.echo(f"best checkpoint: {result.best_checkpoint}")


def import_official_command(
    path: Annotated[Path, typer.Argument(help="official checkpoint file (torch state dict or .safetensors)")],
    preset: Annotated[str, typer.Option("--preset", "-p", help="preset giving what weights do not reveal")],
    out: Annotated[Path, typer.Option("--out", "-o", help="folder for the exported model")],
    data: Annotated[str | None, typer.Option("--data", help="dataset whose metadata fills seq_len etc.")] = None,
    overrides: SetOption = None,
) -> None:
    """Convert a checkpoint written by the official TRM code into our export format."""
    from trm.model.official import OfficialCheckpointError, import_official  # lazy: torch
    from trm.train.export import export_model, fill_from_dataset  # lazy: torch

    config = load_preset(preset, list(overrides or []) + ([f"data.name={data}"] if data else []))
    try:
        base = fill_from_dataset(config.model, config.data.resolve_path(), required=data is not None)
        model, model_config = import_official(path, base)
    except (OfficialCheckpointError, FileNotFoundError) as err:
        fail(str(err))
    config = config.model_copy(update={"model": model_config.model_copy(update={"forward_dtype": "float32"})})
    folder = export_model(model, config, out)
    typer.echo(f"imported {path} -> {folder} ({sum(p.numel() for p in model.parameters()):,} parameters)")
