"""`trm tune`: a Ray Tune search (ASHA) over a preset; the preset and the space are checked before Ray starts."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from trm.atomic import atomic_write_json
from trm.cli.output import fail
from trm.cli.train import PresetOption, SetOption, load_preset
from trm.config import ConfigError, TRMConfig
from trm.distributed.space import SearchSpace, load_space


def tune_command(
    preset: PresetOption,
    space: Annotated[str, typer.Option("--space", help="search space name (trm/presets/spaces/*.yaml) or a YAML")],
    overrides: SetOption = None,
    address: Annotated[str | None, typer.Option("--address", help="Ray cluster address (default: local)")] = None,
    storage: Annotated[str | None, typer.Option("--storage", help="folder or s3://bucket/prefix for results")] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="experiment name (default <run.name>-tune; a study: its name)")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="folder for results.csv/.md and best.json")] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="continue the experiment --name in --storage (finished trials stay)")
    ] = False,
    report: Annotated[
        Path | None, typer.Option("--report", help="a study: also write its report here (e.g. docs/fidelity.md)")
    ] = None,
) -> None:
    """Search hyper-parameters with Ray Tune (ASHA); each trial is a Ray Train run. A space with a `study` block
    (e.g. --space ablations) is an ablation study: every trial runs its budget, is tested once on its val-selected
    checkpoint, and the report (table, figure) is written to the --out folder."""
    config = load_preset(preset, list(overrides or []))
    try:
        search_space = load_space(space)
    except ConfigError as err:
        fail(str(err))
    if search_space.study is not None:
        _study(config, preset, search_space, space, address, storage, name, out, resume, report)
        return
    if report is not None:
        fail(f"--report: search space {space!r} is not a study (it has no 'study' block)")
    from trm.distributed.tune import run_tune  # lazy: importing ray costs seconds

    storage = storage or str(Path(config.run.output_dir).expanduser() / "ray")
    result = run_tune(config, search_space, address=address, storage=storage, name=name, out_dir=out, resume=resume)
    typer.echo(Path(result.table_markdown).read_text() if result.table_markdown else "no trials")
    typer.echo(f"{len(result.trials)} trials, {result.stopped_early} stopped early by ASHA, {result.seconds:.0f} s")
    typer.echo(f"best trial: {result.best_trial} {result.best_params}")
    typer.echo(f"best checkpoint: {result.best_checkpoint}")
    if result.table_csv:
        atomic_write_json(Path(result.table_csv).parent / "best.json", result.model_dump(mode="json"))


def _study(
    config: TRMConfig,
    preset: str,
    space: SearchSpace,
    space_name: str,
    address: str | None,
    storage: str | None,
    name: str | None,
    out: Path | None,
    resume: bool,
    report: Path | None,
) -> None:
    """An ablation study: results under runs/studies/<study name> unless told otherwise."""
    from trm.study.run import run_study  # lazy: ray, torch

    assert space.study is not None
    studies = Path(config.run.output_dir).expanduser() / "studies"
    experiment = name or space.study.name
    command = " ".join(["trm", *sys.argv[1:]]) if sys.argv[1:2] == ["tune"] else f"trm tune --space {space_name}"
    outcome = run_study(
        config,
        space,
        preset=preset,
        space_name=space_name,
        command=command,
        address=address,
        storage=storage or str(studies / "ray"),
        name=experiment,
        out_dir=out or studies / experiment,
        resume=resume,
        report_md=report,
        say=typer.echo,
    )
    typer.echo(outcome.report.markdown)
    typer.echo(f"report: {outcome.report.markdown_path} (figure {outcome.report.figure_path})")
