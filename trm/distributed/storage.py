"""Where Ray Train/Tune put checkpoints and results: a local folder or ``s3://bucket/prefix``.

Why a pyarrow filesystem object instead of letting Ray read ``AWS_*`` variables itself: Ray workers inherit the
environment of the raylet, not of the driver, so credentials set in the driver (or given in configuration) would
not reach the workers that upload checkpoints. A pyarrow ``S3FileSystem`` is serialised with the run config and
works on every node. Secrets are kept in ``SecretStr`` and never appear in reprs, logs or results.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pyarrow.fs as pafs
from pydantic import BaseModel, ConfigDict, Field, SecretStr


class StorageError(ValueError):
    """A storage location that cannot be used (the message names the location, never a secret)."""


class S3Settings(BaseModel):
    """Endpoint and credentials of an S3-compatible store; unset fields fall back to the standard AWS variables."""

    model_config = ConfigDict(extra="forbid")

    endpoint_url: str | None = Field(None, description="e.g. http://127.0.0.1:9000; default $AWS_ENDPOINT_URL")
    access_key: SecretStr | None = Field(None, description="default $AWS_ACCESS_KEY_ID")
    secret_key: SecretStr | None = Field(None, description="default $AWS_SECRET_ACCESS_KEY")
    region: str | None = Field(None, description="default $AWS_DEFAULT_REGION / $AWS_REGION, else us-east-1")

    def resolved(self) -> S3Settings:
        env = os.environ
        return S3Settings(
            endpoint_url=self.endpoint_url or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL"),
            access_key=self.access_key or _secret(env.get("AWS_ACCESS_KEY_ID")),
            secret_key=self.secret_key or _secret(env.get("AWS_SECRET_ACCESS_KEY")),
            region=self.region or env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION") or "us-east-1",
        )


def _secret(value: str | None) -> SecretStr | None:
    return SecretStr(value) if value else None


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
        return self.local_fs().get_file_info(self.fs_path(uri)).type != pafs.FileType.NotFound

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
        pafs.copy_files(self.fs_path(uri), str(destination), source_filesystem=self.local_fs(),
                        destination_filesystem=pafs.LocalFileSystem())
        return destination


def s3_filesystem(settings: S3Settings | None = None) -> pafs.S3FileSystem:
    """A pyarrow S3 filesystem from settings + environment (endpoint URL split into host:port and scheme)."""
    s = (settings or S3Settings()).resolved()
    kwargs: dict = {"region": s.region}
    if s.access_key is not None and s.secret_key is not None:
        kwargs["access_key"] = s.access_key.get_secret_value()
        kwargs["secret_key"] = s.secret_key.get_secret_value()
    elif (s.access_key is None) != (s.secret_key is None):
        raise StorageError("S3 credentials: give both an access key and a secret key, or neither")
    if s.endpoint_url:
        parsed = urlparse(s.endpoint_url if "://" in s.endpoint_url else f"https://{s.endpoint_url}")
        if not parsed.hostname:
            raise StorageError(f"S3 endpoint {s.endpoint_url!r}: expected a URL like http://host:port")
        kwargs["endpoint_override"] = parsed.netloc
        kwargs["scheme"] = parsed.scheme or "https"
    return pafs.S3FileSystem(**kwargs)


def resolve_storage(location: str | Path | None, s3: S3Settings | None = None) -> Storage:
    """``None`` -> ``./ray_results`` folder; a path -> that folder (absolute); ``s3://bucket/prefix`` -> S3."""
    text = str(location) if location is not None else "ray_results"
    if text.startswith("s3://"):
        path = text.removeprefix("s3://").strip("/")
        if not path:
            raise StorageError(f"{text!r}: expected s3://bucket/prefix")
        bucket = path.split("/", 1)[0]
        if len(bucket) < 3:
            raise StorageError(f"{text!r}: bucket name {bucket!r} is too short (S3 needs at least 3 characters)")
        return Storage(uri=f"s3://{path}", ray_path=path, filesystem=s3_filesystem(s3), is_remote=True)
    if "://" in text:
        raise StorageError(f"{text!r}: only local folders and s3:// URIs are supported")
    folder = Path(text).expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return Storage(uri=str(folder), ray_path=str(folder), filesystem=None, is_remote=False)
