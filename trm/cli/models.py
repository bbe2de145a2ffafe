"""`trm models ...`: list, show, promote, download, diff and publish on any store URL.

Every command takes ``--store URL`` (default ``$TRM_STORE`` else ``<repo>/artifacts``). A deliberate store error
(bad name, missing version, checksum mismatch, unreachable endpoint) prints one plain ``error:`` line and exits 1;
the URL shown is always redacted.
"""

from __future__ import annotations

import functools
import json
import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from trm.cli.output import OneLineErrors, exit_code, fail
from trm.store import ModelRef, ModelStore, PublishRequest, StoreError, diff_manifests

P = ParamSpec("P")
R = TypeVar("R")
PIPE_WIDTH = 160  # without a terminal, tables get this fixed width: the same lines in a log, a pipe or a test

models_app = typer.Typer(
    cls=OneLineErrors,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    help="Published models: list, show, promote, download, publish, reproduce.",
)

StoreOption = typer.Option(
    None,
    "--store",
    help="store URL: path, file://PATH or s3://BUCKET/PREFIX (default $TRM_STORE, else <repo>/artifacts)",
)


def _console() -> Console:
    """The console for tables, made at print time (CLI runners swap sys.stdout): a terminal's own width, else
    :data:`PIPE_WIDTH`. Plain lines go through ``typer.echo``: never wrapped, never read as markup."""
    return Console(width=None if sys.stdout.isatty() else PIPE_WIDTH)


def _store_errors_fail(command: Callable[P, R]) -> Callable[P, R]:
    """Deliberate errors (store, bad input) become one ``error:`` line without a traceback: exit code 2 for a bad
    name, alias or URL, 1 for a store that failed."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except (StoreError, ValueError) as error:
            fail(str(error), code=exit_code(error))

    return wrapper


def _short_metrics(metrics: dict[str, Any], limit: int = 3) -> str:
    items = [(k, v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in items[:limit])


@models_app.command("list")
@_store_errors_fail
def list_models(
    name: str | None = typer.Argument(None, help="only this model"), store: str | None = StoreOption
) -> None:
    """List published versions with their aliases."""
    model_store = ModelStore.open(store)
    rows = model_store.list(name)
    if not rows:
        typer.echo(f"no published models in {model_store.url}" + (f" named {name}" if name else ""))
        return
    table = Table(title=f"models in {model_store.url}")
    for column in ("name", "version", "created", "aliases", "commit", "metrics"):
        table.add_column(column, no_wrap=column not in ("aliases", "metrics"))
    for row in rows:
        commit = (row.git_commit or "-")[:10] + ("+dirty" if row.git_dirty else "")
        created = row.created_at.replace("T", " ")[:16]
        table.add_row(row.name, str(row.version), created, ", ".join(row.aliases), commit, _short_metrics(row.metrics))
    _console().print(table)


@models_app.command("show")
@_store_errors_fail
def show(
    ref: str = typer.Argument(..., help="NAME, NAME:VERSION or NAME@ALIAS"), store: str | None = StoreOption
) -> None:
    """Print a version's manifest (files, lineage, config, metrics)."""
    model_store = ModelStore.open(store)
    parsed = ModelRef.parse(ref)
    version = model_store.resolve(parsed)
    typer.echo(model_store.manifest(parsed.name, version).model_dump_json(indent=2))


@models_app.command("promote")
@_store_errors_fail
def promote(
    name: str,
    version: str = typer.Argument(..., help="a version number or @ALIAS"),
    alias: str = typer.Argument(..., help="alias to move, e.g. production"),
    store: str | None = StoreOption,
) -> None:
    """Point ALIAS at VERSION (atomic)."""
    target = ModelStore.open(store).promote(name, version, alias)
    typer.echo(f"{name}@{alias} -> {target}")


@models_app.command("download")
@_store_errors_fail
def download(
    ref: str = typer.Argument(..., help="NAME, NAME:VERSION or NAME@ALIAS"),
    dest: Path = typer.Argument(..., help="folder to create"),
    store: str | None = StoreOption,
) -> None:
    """Download a version and verify every file's sha256."""
    manifest, folder = ModelStore.open(store).download(ModelRef.parse(ref), dest)
    typer.echo(f"{manifest.name}:{manifest.version} -> {folder} ({len(manifest.files)} files verified)")


@models_app.command("diff")
@_store_errors_fail
def diff(
    old: str = typer.Argument(..., help="NAME:VERSION"),
    new: str = typer.Argument(..., help="NAME:VERSION"),
    store: str | None = StoreOption,
) -> None:
    """Why two versions differ: every lineage/config/metric field that changed."""
    model_store = ModelStore.open(store)
    before_ref, after_ref = ModelRef.parse(old), ModelRef.parse(new)
    before = model_store.manifest(before_ref.name, model_store.resolve(before_ref))
    after = model_store.manifest(after_ref.name, model_store.resolve(after_ref))
    changes = diff_manifests(before, after)
    if not changes:
        typer.echo("no differences in inputs or results")
    for key, (was, now) in changes.items():
        typer.echo(f"{key}: {json.dumps(was, default=str)} -> {json.dumps(now, default=str)}")


def _read_metrics(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        metrics = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise StoreError(f"{path}: cannot read metrics JSON: {error}") from error
    if not isinstance(metrics, dict):
        raise StoreError(f"{path}: expected a JSON object of metrics, got {type(metrics).__name__}")
    return metrics


@models_app.command("publish")
@_store_errors_fail
def publish(
    name: str,
    model_dir: Path = typer.Argument(..., help="exported model folder (model.safetensors + config.json)"),
    metrics: Path | None = typer.Option(None, help="metrics JSON (default MODEL_DIR/metrics.json)"),
    metrics_log: Path | None = typer.Option(None, help="metrics.jsonl for the training curve"),
    dataset_dir: Path | None = typer.Option(None, help="built dataset folder (its metadata.json is recorded)"),
    dvc_stage: str | None = typer.Option(None, help="dvc.lock stage whose hashes are recorded"),
    ray_run_name: str | None = typer.Option(None),
    tune_run_name: str | None = typer.Option(None),
    version: int | None = typer.Option(None, help="explicit version (refused if it exists)"),
    alias: list[str] = typer.Option([], "--alias", help="extra alias to move (latest always moves)"),
    store: str | None = StoreOption,
) -> None:
    """Publish an exported model as a new immutable version."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    request = PublishRequest(
        name=name,
        model_dir=model_dir,
        metrics=_read_metrics(metrics),
        metrics_log=metrics_log,
        dataset_dir=dataset_dir,
        dvc_stage=dvc_stage,
        ray_run_name=ray_run_name,
        tune_run_name=tune_run_name,
        version=version,
        aliases=alias,
    )
    model_store = ModelStore.open(store)
    manifest = model_store.publish(request)
    typer.echo(
        f"published {manifest.name}:{manifest.version} to {model_store.url} "
        f"(card: models/{manifest.name}/{manifest.version}/README.md)"
    )


@models_app.command("reproduce")
def reproduce(
    ref: str = typer.Argument(..., help="NAME:VERSION or NAME@ALIAS"),
    store: str | None = StoreOption,
    at_commit: bool = typer.Option(False, "--at-commit", help="run the recorded commit in a git worktree"),
    allow_code_drift: bool = typer.Option(
        False, "--allow-code-drift", help="use this checkout's code even if it differs"
    ),
    tolerance: float = typer.Option(0.01, min=0, help="largest test-metric delta accepted when weights differ"),
) -> None:
    """Retrain a published version from its manifest (commit, data hash, resolved config, seed, workers) and publish
    the result as a new version that records what it reproduces and how it compares. The flow lives with the other
    Prefect flows (pipelines/reproduce.py); this runs it as `python -m pipelines.reproduce`."""
    args = [ref, "--tolerance", str(tolerance)]
    args += [*(["--store", store] if store else []), *(["--at-commit"] if at_commit else [])]
    args += ["--allow-code-drift"] if allow_code_drift else []
    raise typer.Exit(subprocess.run([sys.executable, "-m", "pipelines.reproduce", *args], check=False).returncode)
