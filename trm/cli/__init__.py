"""The `trm` command: the top floor. Each command group lives in its own module here and reaches into the floors
below only inside its commands, so `trm --help` starts without importing torch or ray."""

from __future__ import annotations

import typer

from trm.cli.data import data_app
from trm.cli.evaluate import evaluate_command
from trm.cli.models import models_app
from trm.cli.train import import_official_command, train_command
from trm.cli.tune import tune_command

# rich_markup_mode=None: usage errors print as plain lines instead of a panel sized to the terminal
app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    help="Tiny Recursive Models: data, training, evaluation.",
)
app.add_typer(data_app, name="data", help="Build and inspect puzzle datasets.")
app.command("train")(train_command)
app.command("import-official")(import_official_command)
app.command("evaluate")(evaluate_command)
app.command("tune")(tune_command)
app.add_typer(models_app, name="models", help="Published models: list, show, promote, download, publish.")


def main() -> None:
    app()
