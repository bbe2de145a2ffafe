"""Artifact store: publish exported models as immutable, numbered versions with lineage; aliases; verified load.

Works on a plain path / ``file://`` (default ``$TRM_STORE`` else ``<repo>/artifacts``) or ``s3://bucket/prefix``
(endpoint and credentials from the environment or explicit options, see :mod:`trm.s3`).

Python API::

    from trm.store import ModelStore, PublishRequest, load_model
    store = ModelStore.open("s3://bucket/trm")            # or a path; default $TRM_STORE, else <repo>/artifacts
    manifest = store.publish(PublishRequest(name="sudoku-4x4", model_dir=export_dir, dvc_stage="sudoku-4x4",
                                            dataset_dir=..., ray_run_name=..., aliases=["staging"]))
    store.list(); store.resolve("sudoku-4x4@production"); store.promote("sudoku-4x4", 3, "production")
    store.download("sudoku-4x4:3", dest)                  # verifies every sha256
    model, config = load_model("s3://bucket/trm#sudoku-4x4@production")   # or load_model("name:3", store=URL)

Model URIs: ``<store-url>#<name>[:<version>|@<alias>]``; a bare ``<name>...`` uses ``store=`` or the default
store; no suffix means the newest version.
"""

from trm.store.errors import (
    ChecksumError,
    InvalidLocationError,
    InvalidNameError,
    NotFoundError,
    StoreError,
    StoreUnavailableError,
    VersionExistsError,
)
from trm.store.loading import download_verified, load_model
from trm.store.location import StoreLocation, default_store_url, open_store, redact
from trm.store.manifest import Manifest, diff_manifests, verify_folder
from trm.store.registry import ModelRef, ModelStore, parse_model_uri
from trm.store.request import PublishRequest

__all__ = [
    "ChecksumError",
    "InvalidLocationError",
    "InvalidNameError",
    "Manifest",
    "ModelRef",
    "ModelStore",
    "NotFoundError",
    "PublishRequest",
    "StoreError",
    "StoreLocation",
    "StoreUnavailableError",
    "VersionExistsError",
    "default_store_url",
    "diff_manifests",
    "download_verified",
    "load_model",
    "open_store",
    "parse_model_uri",
    "redact",
    "verify_folder",
]
