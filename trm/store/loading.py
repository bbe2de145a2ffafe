"""Verified loading of a published model: download, check every sha256 against the manifest, then hand the
folder to the exported-model loader (safetensors + JSON only; nothing is unpickled)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trm.store.manifest import MANIFEST_FILENAME, Manifest, verify_folder
from trm.store.registry import ModelRef, ModelStore, parse_model_uri

if TYPE_CHECKING:  # names for annotations only: importing them at run time would pull torch into every `trm` call
    from trm.config import TRMConfig
    from trm.model import TRM


def download_verified(
    ref: str, dest: Path, store: str | None = None, options: Mapping[str, Any] | None = None
) -> tuple[Manifest, Path]:
    """Convenience: ``download`` from ``<store-url>#ref`` or ``ref`` + ``store``."""
    store_url, model_ref = parse_model_uri(ref)
    return ModelStore.open(store_url or store, options).download(model_ref, dest)


def load_model(
    uri: str,
    *,
    store: str | None = None,
    options: Mapping[str, Any] | None = None,
    cache_dir: Path | None = None,
    device: str = "cpu",
) -> tuple[TRM, TRMConfig]:
    """Load a published model: ``(model in eval mode, TRMConfig)``.

    ``uri`` is ``<store-url>#<name>[:version|@alias]`` (e.g. ``s3://bucket/trm#sudoku@production``,
    ``/srv/store#maze:3``) or just ``<name>[:version|@alias]`` with the store from ``store`` / ``$TRM_STORE`` /
    ``<repo>/artifacts``. Files are downloaded (into ``cache_dir/<name>/<version>`` if given and reused while
    they still match the store's manifest, else a temporary folder), every sha256 is verified, and the weights
    are read with safetensors + JSON only (via ``trm.train.export.load_exported``; nothing is unpickled).
    """
    store_url, ref = parse_model_uri(uri)
    model_store = ModelStore.open(store_url or store, options)
    version = model_store.resolve(ref)
    manifest, raw = model_store.read_manifest(ref.name, version)
    if cache_dir is not None:
        folder = Path(cache_dir) / ref.name / str(version)
        cached = folder / MANIFEST_FILENAME
        if cached.is_file() and cached.read_bytes() == raw:
            verify_folder(folder, manifest)
        else:
            shutil.rmtree(folder, ignore_errors=True)
            model_store.download(ModelRef(ref.name, version=version), folder)
        return _load_verified(folder, device)
    with tempfile.TemporaryDirectory(prefix="trm-load-") as tmp:
        folder = Path(tmp) / "model"
        folder.mkdir()
        model_store.fetch_into(manifest, folder)
        return _load_verified(folder, device)


def _load_verified(folder: Path, device: str) -> tuple[TRM, TRMConfig]:
    """Hand a verified folder to the exported-model loader."""
    from trm.train.export import load_exported  # lazy: imports torch (~1 s); listing and publishing never need it

    return load_exported(folder, device=device)
