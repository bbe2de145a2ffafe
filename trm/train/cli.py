"""`trm train` and `trm import-official`: thin typer commands over trm.train.loop and trm.model.official."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def train_command(
    preset: str = typer.Option(..., "--preset", "-p", help="preset name (trm/presets/*.yaml) or a YAML file"),
    overrides: Optional[list[str]] = typer.Option(None, "--set", "-s", help="dotted override, e.g. train.lr=3e-4"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="run folder (default run.output_dir/run.name)"),
    resume: bool = typer.Option(False, "--resume", help="continue from the latest checkpoint in the run folder"),
    device: Optional[str] = typer.Option(None, "--device", help="override train.device (cpu, cuda, cuda:1 ...)"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="show a progress bar"),
    ray: bool = typer.Option(False, "--ray", help="run as a Ray Train job (local Ray started on demand)"),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster address (with --ray; default: local)"),
    workers: int = typer.Option(1, "--workers", min=1, help="data-parallel Ray workers (with --ray)"),
    storage: Optional[str] = typer.Option(None, "--storage", help="Ray storage: a folder or s3://bucket/prefix"),
) -> None:
    """Train a TRM from a preset; builds the dataset first if it is missing. With --ray, the same training runs
    as a Ray Train job on N workers; repeating the command with the same run name resumes it."""
    from trm.config import ConfigError, load_config
    from trm.train.loop import train

    sets = list(overrides or [])
    if out is not None:
        sets += [f"run.output_dir={out.parent}", f"run.name={out.name}"]
    try:
        config = load_config(preset, sets)
    except ConfigError as err:
        _fail(str(err))
    if ray:
        from trm.distributed.cli import train_on_ray

        train_on_ray(config, address=address, workers=workers, storage=storage)
        return
    if address is not None or workers != 1 or storage is not None:
        _fail("--address, --workers and --storage need --ray")
    try:
        result = train(config, resume=resume, device=device, progress=progress)
    except (FileNotFoundError, ValueError) as err:  # bad dataset / config combinations, named by the message
        _fail(str(err))
    typer.echo(f"run folder: {result.run_dir}  steps: {result.steps}  seconds: {result.seconds:.1f}")
    for mode, summary in result.last_eval.items():
        typer.echo(f"eval[{mode}]: exact_accuracy {summary['exact_accuracy']:.4f}  accuracy {summary['accuracy']:.4f}")
    if result.export_dir is not None:
        typer.echo(f"exported model: {result.export_dir}")


def import_official_command(
    path: Path = typer.Argument(..., help="official checkpoint file (torch state dict or .safetensors)"),
    preset: str = typer.Option(..., "--preset", "-p", help="preset giving what weights do not reveal (cycles, heads)"),
    out: Path = typer.Option(..., "--out", "-o", help="folder for the exported model (model.safetensors + config.json)"),
    data: Optional[str] = typer.Option(None, "--data", help="dataset name/path whose metadata fills seq_len etc."),
    overrides: Optional[list[str]] = typer.Option(None, "--set", "-s", help="dotted override, e.g. model.seq_len=81"),
) -> None:
    """Convert a checkpoint written by the official TRM code into our export format."""
    from trm.config import ConfigError, load_config
    from trm.model.official import OfficialCheckpointError, import_official
    from trm.train.export import export_model

    sets = list(overrides or []) + ([f"data.name={data}"] if data else [])
    try:
        config = load_config(preset, sets)
    except ConfigError as err:
        _fail(str(err))
    base = config.model
    metadata_file = config.data.resolve_path() / "metadata.json"
    if metadata_file.is_file():
        meta = json.loads(metadata_file.read_text())
        fill = {k: meta[k] for k in ("seq_len", "vocab_size", "num_puzzle_identifiers") if getattr(base, k) == 0}
        base = base.model_copy(update=fill)
    elif data is not None:
        _fail(f"dataset {data!r}: no metadata.json at {metadata_file}")
    try:
        model, model_config = import_official(path, base)
    except (OfficialCheckpointError, FileNotFoundError) as err:
        _fail(str(err))
    config = config.model_copy(update={"model": model_config.model_copy(update={"forward_dtype": "float32"})})
    folder = export_model(model, config, out)
    typer.echo(f"imported {path} -> {folder} ({sum(p.numel() for p in model.parameters()):,} parameters)")


def register(app: typer.Typer) -> None:
    """Add `train` and `import-official` to the root `trm` command."""
    app.command("train")(train_command)
    app.command("import-official")(import_official_command)
