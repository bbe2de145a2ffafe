"""A built dataset folder on disk: where a name points and its validated metadata.json. Kept free of torch and
pyarrow so that the CLI and DVC stages can inspect datasets without paying for those imports."""

from __future__ import annotations

import json
from pathlib import Path

from trm.data.schema import SCHEMA_VERSION, DatasetMetadata
from trm.paths import data_root


class DatasetFormatError(ValueError):
    """A built dataset folder is missing, incomplete or inconsistent; the message names the file and the problem."""


def resolve_dataset_path(path_or_name: Path | str) -> Path:
    """An existing folder is used as is; a bare name (no path separator) means `trm.paths.data_root()/name`."""
    candidate = Path(path_or_name)
    if candidate.is_dir():
        return candidate
    text = str(path_or_name)
    if "/" not in text and "\\" not in text and not text.startswith("."):
        return data_root() / text
    return candidate


def read_metadata(folder: Path) -> DatasetMetadata:
    metadata_file = folder / "metadata.json"
    if not metadata_file.is_file():
        hint = f"is {folder} a built dataset? build it with `trm data build`"
        raise DatasetFormatError(f"{metadata_file}: missing ({hint})")
    try:
        raw = json.loads(metadata_file.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise DatasetFormatError(f"{metadata_file}: unreadable JSON ({error})") from error
    if isinstance(raw, dict) and raw.get("schema_version", SCHEMA_VERSION) != SCHEMA_VERSION:
        raise DatasetFormatError(
            f"{metadata_file}: schema_version {raw.get('schema_version')} but this code reads version "
            f"{SCHEMA_VERSION}; rebuild the dataset"
        )
    try:
        return DatasetMetadata.model_validate(raw)
    except Exception as error:  # pydantic.ValidationError, kept generic to name the file
        raise DatasetFormatError(f"{metadata_file}: invalid metadata ({error})") from error
