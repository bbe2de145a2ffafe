"""`trm models ...`: list, show, promote, download (and publish, diff) on any store URL.

Every command takes ``--store URL`` (default ``$TRM_STORE`` else ``<repo>/artifacts``). Deliberate store errors
(bad name, missing version, checksum mismatch, unreachable endpoint) print one red line and exit 1; the URL shown
is always redacted.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from trm.store.errors import StoreError
from trm.store.manifest import diff_manifests
from trm.store.registry import ModelRef, ModelStore

models_app = typer.Typer(no_args_is_help=True, add_completion=False, help="Published models: list, show, promote, "
                         "download, publish.")


class _Out:
    """Consoles made at print time: CLI runners swap sys.stdout, and a pipe gets a wide fixed width so tables
    stay greppable instead of being squeezed to 80 columns."""

    def __getattr__(self, attr: str) -> Any:
        return getattr(Console(width=None if sys.stdout.isatty() else 160), attr)


console: Any = _Out()

StoreOption = typer.Option(None, "--store", help="store URL: path, file://PATH or s3://BUCKET/PREFIX "
                           "(default $TRM_STORE, else <repo>/artifacts)")


def _clean_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (StoreError, ValueError) as error:
            Console(stderr=True).print(f"[red]error:[/red] {error}", markup=True, highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper


def _short_metrics(metrics: dict[str, Any], limit: int = 3) -> str:
    items = [(k, v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in items[:limit])


@models_app.command("list")
@_clean_errors
def list_models(name: Optional[str] = typer.Argument(None, help="only this model"), store: Optional[str] = StoreOption
                ) -> None:
    """List published versions with their aliases."""
    model_store = ModelStore.open(store)
    rows = model_store.list(name)
    table = Table(title=f"models in {model_store.url}")
    for column in ("name", "version", "created", "aliases", "commit", "metrics"):
        table.add_column(column, no_wrap=column not in ("aliases", "metrics"))
    for row in rows:
        commit = (row.git_commit or "-")[:10] + ("+dirty" if row.git_dirty else "")
        table.add_row(row.name, str(row.version), row.created_at.replace("T", " ")[:16], ", ".join(row.aliases), commit,
                      _short_metrics(row.metrics))
    console.print(table if rows else f"no published models in {model_store.url}" + (f" named {name}" if name else ""))


@models_app.command("show")
@_clean_errors
def show(ref: str = typer.Argument(..., help="NAME, NAME:VERSION or NAME@ALIAS"), store: Optional[str] = StoreOption
         ) -> None:
    """Print a version's manifest (files, lineage, config, metrics)."""
    model_store = ModelStore.open(store)
    parsed = ModelRef.parse(ref)
    version = model_store.resolve(parsed)
    console.print_json(model_store.manifest(parsed.name, version).model_dump_json())


@models_app.command("promote")
@_clean_errors
def promote(name: str, version: str = typer.Argument(..., help="a version number or @ALIAS"),
            alias: str = typer.Argument(..., help="alias to move, e.g. production"),
            store: Optional[str] = StoreOption) -> None:
    """Point ALIAS at VERSION (atomic)."""
    model_store = ModelStore.open(store)
    target = model_store.promote(name, version, alias)
    console.print(f"{name}@{alias} -> {target}")


@models_app.command("download")
@_clean_errors
def download(ref: str = typer.Argument(..., help="NAME, NAME:VERSION or NAME@ALIAS"),
             dest: Path = typer.Argument(..., help="folder to create"), store: Optional[str] = StoreOption) -> None:
    """Download a version and verify every file's sha256."""
    manifest, folder = ModelStore.open(store).download(ModelRef.parse(ref), dest)
    console.print(f"{manifest.name}:{manifest.version} -> {folder} ({len(manifest.files)} files verified)")


@models_app.command("diff")
@_clean_errors
def diff(old: str = typer.Argument(..., help="NAME:VERSION"), new: str = typer.Argument(..., help="NAME:VERSION"),
         store: Optional[str] = StoreOption) -> None:
    """Why two versions differ: every lineage/config/metric field that changed."""
    model_store = ModelStore.open(store)
    refs = [ModelRef.parse(old), ModelRef.parse(new)]
    manifests = [model_store.manifest(r.name, model_store.resolve(r)) for r in refs]
    changes = diff_manifests(*manifests)
    if not changes:
        console.print("no differences in inputs or results")
    for key, (before, after) in changes.items():
        console.print(f"{key}: {json.dumps(before, default=str)} -> {json.dumps(after, default=str)}", highlight=False)


@models_app.command("publish")
@_clean_errors
def publish(
    name: str,
    model_dir: Path = typer.Argument(..., help="exported model folder (model.safetensors + config.json)"),
    metrics: Optional[Path] = typer.Option(None, help="metrics JSON (default MODEL_DIR/metrics.json)"),
    metrics_log: Optional[Path] = typer.Option(None, help="metrics.jsonl for the training curve"),
    dataset_dir: Optional[Path] = typer.Option(None, help="built dataset folder (its metadata.json is recorded)"),
    dvc_stage: Optional[str] = typer.Option(None, help="dvc.lock stage whose hashes are recorded"),
    ray_run_name: Optional[str] = typer.Option(None),
    tune_run_name: Optional[str] = typer.Option(None),
    version: Optional[int] = typer.Option(None, help="explicit version (refused if it exists)"),
    alias: list[str] = typer.Option([], "--alias", help="extra alias to move (latest always moves)"),
    store: Optional[str] = StoreOption,
) -> None:
    """Publish an exported model as a new immutable version."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    metrics_dict = None
    if metrics is not None:
        try:
            metrics_dict = json.loads(metrics.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise StoreError(f"{metrics}: cannot read metrics JSON: {error}") from error
    model_store = ModelStore.open(store)
    manifest = model_store.publish(
        name, model_dir, metrics=metrics_dict, metrics_log=metrics_log, dataset_dir=dataset_dir,
        dvc_stage=dvc_stage, ray_run_name=ray_run_name, tune_run_name=tune_run_name, version=version, aliases=alias,
    )
    console.print(f"published {manifest.name}:{manifest.version} to {model_store.url} "
                  f"(card: models/{manifest.name}/{manifest.version}/README.md)")
