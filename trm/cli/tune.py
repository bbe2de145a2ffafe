"""`trm tune`: a Ray Tune search (ASHA) over a preset; the preset and the space are checked before Ray starts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from trm.atomic import atomic_write_json
from trm.cli.output import fail
from trm.cli.train import PresetOption, SetOption, load_preset
from trm.config import ConfigError
from trm.distributed.space import load_space


def tune_command(
    preset: PresetOption,
    space: Annotated[str, typer.Option("--space", help="search space name (trm/presets/spaces/*.yaml) or a YAML")],
    overrides: SetOption = None,
    address: Annotated[str | None, typer.Option("--address", help="Ray cluster address (default: local)")] = None,
    storage: Annotated[str | None, typer.Option("--storage", help="folder or s3://bucket/prefix for results")] = None,
    name: Annotated[str | None, typer.Option("--name", help="experiment name (default <run.name>-tune)")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="folder for results.csv/.md and best.json")] = None,
) -> None:
    """Search hyper-parameters with Ray Tune (ASHA); each trial is a Ray Train run."""
    config = load_preset(preset, list(overrides or []))
    try:
        search_space = load_space(space)
    except ConfigError as err:
        fail(str(err))
    from trm.distributed.tune import run_tune  # lazy: importing ray costs seconds

    storage = storage or str(Path(config.run.output_dir).expanduser() / "ray")
    result = run_tune(config, search_space, address=address, storage=storage, name=name, out_dir=out)
    typer.echo(Path(result.table_markdown).read_text() if result.table_markdown else "no trials")
    typer.echo(f"{len(result.trials)} trials, {result.stopped_early} stopped early by ASHA, {result.seconds:.0f} s")
    typer.echo(f"best trial: {result.best_trial} {result.best_params}")
    typer.echo(f"best checkpoint: {result.best_checkpoint}")
    if result.table_csv:
        atomic_write_json(Path(result.table_csv).parent / "best.json", result.model_dump(mode="json"))
