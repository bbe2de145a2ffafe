"""Where Ray Train/Tune put checkpoints and results: a local folder or ``s3://bucket/prefix``.

S3 is handed to Ray as a pyarrow filesystem object built by :mod:`trm.s3` rather than left to Ray's own reading of
``AWS_*``: Ray workers inherit the raylet's environment, not the driver's, and the object travels with the run
config to every node.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs

from trm.errors import UsageError
from trm.s3 import S3ConfigError, S3Settings, parse_s3_url, pyarrow_filesystem, redact

__all__ = ["S3Settings", "Storage", "StorageError", "resolve_storage"]


class StorageError(UsageError):
    """A storage location that cannot be used (the message names the location, never a secret)."""


@dataclass(frozen=True)
class Storage:
    """A resolved storage location.

    ``uri`` is what people see (an absolute folder or ``s3://bucket/prefix``); ``ray_path`` + ``filesystem`` are
    what Ray's ``RunConfig(storage_path=..., storage_filesystem=...)`` gets (for S3 the path has no scheme)."""

    uri: str
    ray_path: str
    filesystem: pafs.FileSystem | None
    is_remote: bool

    def uri_of(self, *parts: str) -> str:
        """URI of a path below the storage root."""
        return "/".join([self.uri.rstrip("/"), *[p.strip("/") for p in parts if p]])

    def fs_path(self, uri: str) -> str:
        """The path of ``uri`` inside ``self.filesystem`` (strips ``s3://``)."""
        return uri.removeprefix("s3://") if self.is_remote else uri

    def local_fs(self) -> pafs.FileSystem:
        return self.filesystem if self.filesystem is not None else pafs.LocalFileSystem()

    def exists(self, uri: str) -> bool:
        return bool(self.local_fs().get_file_info(self.fs_path(uri)).type != pafs.FileType.NotFound)

    def list_dir(self, uri: str) -> list[str]:
        """Names of the entries directly below ``uri`` (empty when it does not exist)."""
        fs = self.local_fs()
        selector = pafs.FileSelector(self.fs_path(uri), allow_not_found=True, recursive=False)
        return sorted(Path(info.path).name for info in fs.get_file_info(selector))

    def download(self, uri: str, destination: Path) -> Path:
        """Copy the folder ``uri`` to a local ``destination`` (a no-op copy for local storage)."""
        destination = Path(destination)
        if not self.exists(uri):
            raise StorageError(f"{uri}: not found in storage")
        if destination.exists():
            shutil.rmtree(destination)
        destination.mkdir(parents=True)
        pafs.copy_files(
            self.fs_path(uri),
            str(destination),
            source_filesystem=self.local_fs(),
            destination_filesystem=pafs.LocalFileSystem(),
        )
        return destination


def resolve_storage(location: str | Path | None, s3: S3Settings | None = None) -> Storage:
    """``None`` -> ``./ray_results`` folder; a path -> that folder (absolute); ``s3://bucket/prefix`` -> S3 with
    endpoint and credentials from ``s3``, else the environment."""
    text = str(location) if location is not None else "ray_results"
    if text.startswith("s3://"):
        try:
            url = parse_s3_url(text)
            filesystem = pyarrow_filesystem(s3)
        except S3ConfigError as error:
            raise StorageError(str(error)) from error
        return Storage(uri=url.uri, ray_path=url.path, filesystem=filesystem, is_remote=True)
    if "://" in text:
        raise StorageError(f"{redact(text)!r}: only local folders and s3:// URIs are supported")
    folder = Path(text).expanduser().resolve()  # created by Ray when the run writes to it, not by a check
    return Storage(uri=str(folder), ray_path=str(folder), filesystem=None, is_remote=False)
