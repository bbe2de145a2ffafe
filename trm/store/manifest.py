"""The manifest of a published model version: what the files are, and everything that went into them.

``manifest.json`` is written last; its presence is what makes a version exist. It lists the sha256 and size of
every other file in the version folder (the loader verifies them), and the lineage needed to explain or redo the
model: code (git commit + dirty flag), data (DVC hashes from ``dvc.lock`` + dataset metadata), the full resolved
config, the Ray/Tune run names, the software environment, the metrics and the creation time.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, field_validator

from trm.store.errors import ChecksumError, InvalidNameError

MANIFEST_SCHEMA_VERSION = 1
MANIFEST_FILENAME = "manifest.json"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
ALIAS_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]*")


def check_name(name: str) -> str:
    """A model name that cannot escape the store root: ``[A-Za-z0-9][A-Za-z0-9._-]*`` without ``..``."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or ".." in name or len(name) > 128:
        raise InvalidNameError(
            f"invalid model name {name!r}: use letters, digits, '.', '_' and '-', start with a letter or digit, "
            "no '..' and no slashes (max 128 characters)"
        )
    return name


def check_alias(alias: str) -> str:
    """An alias is lower-case letters, digits and '-' (``latest``, ``production``, ``exp-3``...)."""
    if not isinstance(alias, str) or not ALIAS_PATTERN.fullmatch(alias) or len(alias) > 64:
        raise InvalidNameError(f"invalid alias {alias!r}: use lower-case letters, digits and '-' (e.g. production)")
    return alias


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class FileEntry(BaseModel):
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)


class GitInfo(BaseModel):
    """The code that produced the model. ``commit`` is None outside a git checkout (e.g. an installed wheel)."""

    commit: str | None = None
    dirty: bool | None = Field(None, description="uncommitted changes to tracked files or new untracked files")
    branch: str | None = None


class DvcEntry(BaseModel):
    path: str
    md5: str | None = None
    size: int | None = None
    nfiles: int | None = None


class DataLineage(BaseModel):
    """The data used, as DVC recorded it in ``dvc.lock`` for the dataset's stage."""

    stage: str
    lock_file: str = Field(description="dvc.lock path relative to the repository (informational)")
    deps: list[DvcEntry] = Field(default_factory=list)
    outs: list[DvcEntry] = Field(default_factory=list)
    params: dict[str, Any] = Field(default_factory=dict)


class EnvironmentInfo(BaseModel):
    python: str
    platform: str
    packages: dict[str, str] = Field(default_factory=dict, description="distribution name -> version")


class Manifest(BaseModel):
    schema_version: int = MANIFEST_SCHEMA_VERSION
    name: str
    version: int = Field(ge=1)
    created_at: datetime
    files: dict[str, FileEntry] = Field(description="file name in the version folder -> checksum (manifest excluded)")
    git: GitInfo = Field(default_factory=GitInfo)
    data: DataLineage | None = None
    dataset_metadata: dict[str, Any] | None = None
    config: dict[str, Any] = Field(default_factory=dict, description="the full resolved training config")
    ray_run_name: str | None = None
    tune_run_name: str | None = None
    tune_trial_name: str | None = None
    timestamps: dict[str, str] = Field(
        default_factory=dict,
        description="named ISO times given by the publisher "
        "(data built, training started/finished); created_at is the publish time",
    )
    environment: EnvironmentInfo | None = None
    metrics: dict[str, Any] = Field(default_factory=dict, description="the test split, measured once")
    selection: dict[str, Any] | None = Field(
        None, description="the training step handed on: rule, validation split, metric, step, its validation metrics"
    )
    extra: dict[str, Any] = Field(default_factory=dict, description="free-form notes from the publisher")

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        return check_name(value)

    @field_validator("files")
    @classmethod
    def _plain_file_names(cls, value: dict[str, FileEntry]) -> dict[str, FileEntry]:
        for file_name in value:
            if file_name == MANIFEST_FILENAME or not NAME_PATTERN.fullmatch(file_name) or ".." in file_name:
                raise ValueError(f"manifest lists an invalid file name {file_name!r}")
        return value

    def to_json(self) -> str:
        return self.model_dump_json(indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes, source: str = "manifest.json") -> Manifest:
        """Parse and validate; a broken manifest names its source instead of dumping a pydantic trace only."""
        try:
            return cls.model_validate_json(text)
        except ValueError as error:
            raise ValueError(f"{source}: not a valid model manifest: {error}") from error


def utc_now() -> datetime:
    return datetime.now(UTC)


def diff_manifests(old: Manifest, new: Manifest) -> dict[str, tuple[Any, Any]]:
    """What differs between two versions' inputs and results (dotted key -> (old, new)), ignoring what always
    differs (version, timestamps, file checksums of generated artefacts). Answers "why are these two different?"."""
    skip = {"version", "created_at", "timestamps", "files"}
    left = _flatten({k: v for k, v in json.loads(old.model_dump_json()).items() if k not in skip})
    right = _flatten({k: v for k, v in json.loads(new.model_dump_json()).items() if k not in skip})
    changes = {
        key: (left.get(key), right.get(key))
        for key in sorted(set(left) | set(right))
        if left.get(key) != right.get(key)
    }
    for weights in ("model.safetensors", "config.json"):
        a, b = old.files.get(weights), new.files.get(weights)
        if (a and a.sha256) != (b and b.sha256):
            changes[f"files.{weights}.sha256"] = (a and a.sha256, b and b.sha256)
    return changes


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list) and value and all(isinstance(v, dict) and "path" in v for v in value):
        return _flatten({v["path"]: {k: x for k, x in v.items() if k != "path"} for v in value}, prefix)
    return {prefix: value}


def verify_folder(folder: Path, manifest: Manifest, where: str | None = None) -> None:
    """Check every manifest file in ``folder`` (size, then sha256); the error names the file and the cause."""
    for file_name, entry in manifest.files.items():
        path = Path(folder) / file_name
        label = f"{where}/{file_name}" if where else str(path)
        if not path.is_file():
            raise ChecksumError(f"{label}: missing (model {manifest.name}:{manifest.version})")
        size = path.stat().st_size
        digest = sha256_file(path)
        if size != entry.size or digest != entry.sha256:
            raise ChecksumError(
                f"{label}: checksum mismatch for model {manifest.name}:{manifest.version} (manifest sha256 "
                f"{entry.sha256[:16]}…, {entry.size} bytes; found {digest[:16]}…, {size} bytes): the stored file "
                "was modified or corrupted; refusing to load it"
            )
