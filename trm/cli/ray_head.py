"""`trm ray status|stop`: the local Ray head that training jobs run on when no cluster address is given
(trm/distributed/head.py). It outlives the flow runs that started it, so it is stopped explicitly."""

from __future__ import annotations

import typer

from trm.cli.output import OneLineErrors

ray_app = typer.Typer(
    cls=OneLineErrors,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    help="The local Ray head that runs training jobs: status, stop.",
)


@ray_app.command("status")
def status() -> None:
    """Where the local head answers (Jobs API URL, GCS address), or that none is recorded."""
    from trm.distributed.head import describe, head_dir, read_head  # lazy: keeps `trm --help` free of Ray imports

    typer.echo(f"{head_dir()}: {describe(read_head())}")


@ray_app.command("stop")
def stop() -> None:
    """Stop the local head and every job on it (running training stops; its checkpoints stay)."""
    from trm.distributed.head import stop_local_head  # lazy: keeps `trm --help` free of Ray imports

    head = stop_local_head()
    typer.echo(f"stopped the local Ray head at {head.dashboard_url}" if head else "no local Ray head recorded")
