"""How every `trm` command reports failure: one plain line on stderr, never a traceback unless asked for.

Usage and configuration errors (a wrong option, preset, override, path, name or URL: ``trm.errors.UsageError``
and click's own usage errors) exit 2; failures of a started run exit 1 with a one-line summary. ``--debug`` (or
``TRM_DEBUG=1``) shows the traceback instead. Lines are never wrapped into panels, so they read the same at any
terminal width, in a pipe and in a log file.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn

import typer
from typer.core import TyperCommand, TyperGroup
from typer.exceptions import TyperException

from trm.errors import UsageError

USAGE_ERROR = 2  # a bad option, preset, override, path or name: nothing was started
RUNTIME_ERROR = 1  # the command started and something failed on the way
_debug_flag = False


def set_debug(enabled: bool) -> None:
    global _debug_flag
    _debug_flag = enabled


def debug_enabled() -> bool:
    return _debug_flag or os.environ.get("TRM_DEBUG", "").lower() in ("1", "true", "yes")


def one_line(text: str) -> str:
    """A message on one line (multi-line messages are joined), so it reads well in a terminal and a UI."""
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def describe(error: BaseException) -> str:
    """The line a user sees: our own and the command line's errors by their message, anything else with its type."""
    if isinstance(error, TyperException) and hasattr(error, "format_message"):  # click's usage errors
        context = getattr(error, "ctx", None)
        hint = f" (see '{context.command_path} --help')" if context is not None else ""
        return one_line(error.format_message()) + hint
    if _is_ours(error):
        return one_line(str(error))
    return one_line(f"{type(error).__name__}: {error}")


def _is_ours(error: BaseException) -> bool:
    """Errors raised on purpose by this project: their message is written for the user."""
    return type(error).__module__.split(".")[0] in ("trm", "pipelines")


def exit_code(error: BaseException) -> int:
    """2 for usage errors (ours, and click's: a bad option or value), 1 for anything that failed on the way."""
    if isinstance(error, UsageError):
        return USAGE_ERROR
    if isinstance(error, TyperException):
        return int(getattr(error, "exit_code", RUNTIME_ERROR) or RUNTIME_ERROR)
    return RUNTIME_ERROR


def fail(message: str, code: int = USAGE_ERROR) -> NoReturn:
    """Print ``error: <message>`` on stderr as one plain line and exit with ``code``. Called while handling an
    exception with ``--debug`` on, it lets that exception through instead, so its traceback is shown."""
    if debug_enabled() and sys.exc_info()[1] is not None:
        raise  # the exception the caller is handling, with its traceback
    typer.echo(f"error: {one_line(message)}", err=True)
    raise typer.Exit(code=code)


class _OneLine:
    """Every failure ends as one line on stderr and an exit code (see the module doc)."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        set_debug(False)
        try:
            # without standalone mode click returns an Exit's code instead of exiting; our commands return None
            result = super().main(  # type: ignore[misc]
                args, prog_name, complete_var, standalone_mode=False, windows_expand_args=windows_expand_args, **extra
            )
            code = result if isinstance(result, int) else 0
        except typer.Abort:
            typer.echo("error: aborted", err=True)
            code = 130
        except Exception as error:  # noqa: BLE001 - every failure becomes one line (or a traceback on request)
            if debug_enabled():
                traceback.print_exc()
            else:
                hint = (
                    ""
                    if _is_ours(error) or isinstance(error, TyperException)
                    else " (rerun with --debug for the traceback)"
                )
                typer.echo(f"error: {describe(error)}{hint}", err=True)
            code = exit_code(error)
        if standalone_mode:
            sys.exit(code)
        return code


class OneLineErrors(_OneLine, TyperGroup):
    """A command group with one-line errors."""


class OneLineCommand(_OneLine, TyperCommand):
    """A single command (positional arguments, no sub-commands) with one-line errors."""


def pick_device(name: str) -> str:
    """``--device``: auto picks CUDA when there is one; asking for CUDA without one fails in one line."""
    import torch  # lazy: torch costs seconds and `trm --help` does not need it

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        fail("--device cuda requested but no CUDA device is available")
    return name
