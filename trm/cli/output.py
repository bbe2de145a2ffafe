"""How every `trm` command talks to the user: one plain line per error (never wrapped into a panel, so it reads
the same at any terminal width and in a log file), and the exit codes the commands share."""

from __future__ import annotations

from typing import NoReturn

import typer

USAGE_ERROR = 2  # a bad option, preset, override, path or name: nothing was started
RUNTIME_ERROR = 1  # the command started and something failed on the way


def fail(message: str, code: int = USAGE_ERROR) -> NoReturn:
    """Print ``error: <message>`` on stderr as plain text and exit with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=code)
