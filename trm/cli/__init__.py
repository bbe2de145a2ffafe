"""The `trm` command: the top floor. Each command group lives in its own module here and reaches into the floors
below only inside its commands, so `trm --help` starts without importing torch or ray."""

from __future__ import annotations

import typer

from trm.cli.data import data_app
from trm.cli.evaluate import evaluate_command
from trm.cli.models import models_app
from trm.cli.output import OneLineErrors, set_debug
from trm.cli.ray_head import ray_app
from trm.cli.solve import solve_command
from trm.cli.train import import_official_command, train_command
from trm.cli.tune import tune_command

# every failure ends as one plain line (trm/cli/output.py); rich_markup_mode=None: help without terminal-sized panels
app = typer.Typer(
    cls=OneLineErrors,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    help="Tiny Recursive Models: data, training, evaluation.",
)


@app.callback(cls=OneLineErrors)
def _options(debug: bool = typer.Option(False, "--debug", help="show the traceback of a failure")) -> None:
    set_debug(debug)


app.add_typer(data_app, name="data", help="Build and inspect puzzle datasets.")
app.command("train")(train_command)
app.command("import-official")(import_official_command)
app.command("evaluate")(evaluate_command)
app.command("solve")(solve_command)
app.command("tune")(tune_command)
app.add_typer(models_app, name="models", help="Published models: list, show, promote, download, publish, reproduce.")
app.add_typer(ray_app, name="ray", help="The local Ray head that runs training jobs: status, stop.")


def main() -> None:
    app()
