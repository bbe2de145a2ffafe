"""The `trm` command. Thin: each group lives next to the code it drives; this file only assembles them."""

from __future__ import annotations

import typer

from trm.data.cli import data_app
from trm.distributed.cli import register as register_distributed
from trm.evaluate.cli import register as register_evaluate
from trm.store.cli import models_app
from trm.train.cli import register as register_train

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Tiny Recursive Models: data, training, evaluation.")
app.add_typer(data_app, name="data", help="Build and inspect puzzle datasets.")
register_train(app)
register_evaluate(app)
register_distributed(app)
app.add_typer(models_app, name="models", help="Published models: list, show, promote, download, publish.")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
