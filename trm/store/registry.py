"""Publish, list, resolve, promote and download model versions in a store (local folder or S3).

A version is the folder ``models/<name>/<version>/``; its ``manifest.json`` is written last, and without it the
version does not exist. Each alias is one small object under ``models/<name>/aliases/``. Why this shape, and how
claims and interrupted publishes work: the artifact store section of docs/architecture.md.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from trm.atomic import atomic_folder
from trm.store.errors import InvalidNameError, NotFoundError, StoreError, VersionExistsError
from trm.store.location import StoreLocation, open_store
from trm.store.manifest import MANIFEST_FILENAME, Manifest, check_alias, check_name, utc_now, verify_folder
from trm.store.objects import StoreObjects
from trm.store.request import PublishRequest
from trm.store.staging import VERSION_FILES, CheckedRequest, check_request, stage_version

__all__ = ["CLAIM_FILENAME", "LATEST", "VERSION_FILES", "ModelRef", "ModelStore", "VersionInfo", "parse_model_uri"]

log = logging.getLogger(__name__)

LATEST = "latest"
CLAIM_FILENAME = ".claim.json"
DEFAULT_STALE_AFTER_S = 6 * 3600.0  # an unfinished publish older than this is abandoned, not slow


@dataclass(frozen=True)
class ModelRef:
    """``NAME``, ``NAME:VERSION`` or ``NAME@ALIAS``; no suffix = the newest published version."""

    name: str
    version: int | None = None
    alias: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        text = text.strip()
        if "@" in text:
            name, alias = text.split("@", 1)
            return cls(check_name(name), alias=check_alias(alias))
        if ":" in text:
            name, version = text.rsplit(":", 1)
            if not version.isdigit() or int(version) < 1:
                raise InvalidNameError(f"invalid version {version!r} in {text!r}: versions are integers 1, 2, ...")
            return cls(check_name(name), version=int(version))
        return cls(check_name(text))

    def __str__(self) -> str:
        return self.name + (f":{self.version}" if self.version else f"@{self.alias}" if self.alias else "")


def parse_model_uri(uri: str) -> tuple[str | None, ModelRef]:
    """``<store-url>#<name>[:version|@alias]`` -> (store URL, ref); a bare ``name[...]`` -> (None, ref)."""
    if "#" in uri:
        store_url, ref = uri.rsplit("#", 1)
        if not store_url:
            raise InvalidNameError(f"model URI {uri!r} has an empty store URL before '#'")
        return store_url, ModelRef.parse(ref)
    return None, ModelRef.parse(uri)


@dataclass(frozen=True)
class VersionInfo:
    name: str
    version: int
    created_at: str
    aliases: tuple[str, ...]
    git_commit: str | None
    git_dirty: bool | None
    metrics: dict[str, Any]


class ModelStore:
    """All model operations on one opened store. Every storage call goes through ``location.call``, so an
    unreachable S3 endpoint is reported once, with the redacted URL, after botocore's bounded retries."""

    def __init__(self, location: StoreLocation, stale_after_s: float = DEFAULT_STALE_AFTER_S) -> None:
        self.location = location
        self.objects = StoreObjects(location)
        self.stale_after_s = stale_after_s

    @classmethod
    def open(
        cls,
        url: str | os.PathLike[str] | None = None,
        options: Mapping[str, Any] | None = None,
        stale_after_s: float = DEFAULT_STALE_AFTER_S,
        retry_attempts: int | None = None,
    ) -> ModelStore:
        """See :func:`trm.store.location.open_store` for ``url``, ``options`` and ``retry_attempts``."""
        return cls(open_store(url, options, retry_attempts=retry_attempts), stale_after_s)

    # ----------------------------------------------------------------- paths and raw I/O
    @property
    def url(self) -> str:
        return self.location.display_url

    def _model_dir(self, name: str) -> str:
        return self.location.join("models", check_name(name))

    def _version_dir(self, name: str, version: int) -> str:
        return f"{self._model_dir(name)}/{int(version)}"

    def _alias_path(self, name: str, alias: str) -> str:
        return f"{self._model_dir(name)}/aliases/{check_alias(alias)}.json"

    # ----------------------------------------------------------------- reading
    def names(self) -> list[str]:
        """Model names having at least one complete version."""
        found = []
        for entry in self.objects.ls_names(self.location.join("models")):
            try:
                check_name(entry)
            except InvalidNameError:
                continue
            if self.versions(entry):
                found.append(entry)
        return found

    def _scan(self, name: str) -> tuple[list[int], list[int]]:
        """(every version folder, complete versions) of a model from ONE recursive listing: on S3 that is one
        paginated request instead of a HEAD per version."""
        base = self._model_dir(name).rstrip("/") + "/"
        entries = self.objects.find(base)
        folders: set[int] = set()
        complete: set[int] = set()
        for entry in entries:
            parts = str(entry)[len(base) :].split("/") if str(entry).startswith(base) else []
            if len(parts) == 2 and parts[0].isdigit() and not parts[0].startswith("0"):
                folders.add(int(parts[0]))
                if parts[1] == MANIFEST_FILENAME:
                    complete.add(int(parts[0]))
        return sorted(folders), sorted(complete)

    def versions(self, name: str) -> list[int]:
        """Complete versions (those with a manifest), ascending."""
        return self._scan(name)[1]

    def manifest(self, name: str, version: int) -> Manifest:
        return self.read_manifest(name, version)[0]

    def read_manifest(self, name: str, version: int) -> tuple[Manifest, bytes]:
        """The parsed manifest and its exact bytes (a cache compares bytes to know it is still current)."""
        path = f"{self._version_dir(name, version)}/{MANIFEST_FILENAME}"
        try:
            raw = self.objects.read(path)
        except NotFoundError as error:
            raise NotFoundError(f"model {name}:{version} does not exist in {self.url}") from error
        manifest = Manifest.from_json(raw, source=self.objects.where(path))
        if manifest.name != name or manifest.version != version:
            raise StoreError(
                f"{self.objects.where(path)}: manifest says {manifest.name}:{manifest.version}, "
                f"expected {name}:{version}"
            )
        return manifest, raw

    def aliases(self, name: str) -> dict[str, int]:
        """Alias -> version for one model."""
        found: dict[str, int] = {}
        for entry in self.objects.ls_names(f"{self._model_dir(name)}/aliases"):
            if entry.endswith(".json") and not entry.startswith("."):
                alias = entry[: -len(".json")]
                try:
                    found[alias] = self._read_alias(name, alias)
                except (NotFoundError, InvalidNameError):
                    continue
        return found

    def _read_alias(self, name: str, alias: str) -> int:
        path = self._alias_path(name, alias)
        raw = self.objects.read(path)
        try:
            body = json.loads(raw)
            version = int(body["version"])
        except (ValueError, KeyError, TypeError) as error:
            raise StoreError(f"{self.objects.where(path)}: not a valid alias object: {error}") from error
        return version

    def resolve(self, ref: ModelRef | str) -> int:
        """The version a reference points to; it must exist (have a manifest)."""
        ref = ModelRef.parse(ref) if isinstance(ref, str) else ref
        if ref.version is not None:
            version = ref.version
        elif ref.alias is not None:
            try:
                version = self._read_alias(ref.name, ref.alias)
            except NotFoundError as error:
                raise NotFoundError(f"model {ref.name} has no alias {ref.alias!r} in {self.url}") from error
        else:
            existing = self.versions(ref.name)
            if not existing:
                raise NotFoundError(f"model {ref.name!r} has no published version in {self.url}")
            version = existing[-1]
        if not self.objects.exists(f"{self._version_dir(ref.name, version)}/{MANIFEST_FILENAME}"):
            via = f" (via alias {ref.alias!r})" if ref.alias else ""
            raise NotFoundError(
                f"model {ref.name}:{version}{via} does not exist in {self.url}; published versions: "
                f"{self.versions(ref.name) or 'none'}"
            )
        return version

    def list(self, name: str | None = None) -> list[VersionInfo]:
        """Every complete version (of one model, or of all), with its aliases and headline facts."""
        rows: list[VersionInfo] = []
        for model in [check_name(name)] if name else self.names():
            by_version: dict[int, list[str]] = {}
            for alias, version in self.aliases(model).items():
                by_version.setdefault(version, []).append(alias)
            for version in self.versions(model):
                manifest = self.manifest(model, version)
                rows.append(
                    VersionInfo(
                        model,
                        version,
                        manifest.created_at.isoformat(timespec="seconds"),
                        tuple(sorted(by_version.get(version, []))),
                        manifest.git.commit,
                        manifest.git.dirty,
                        manifest.metrics,
                    )
                )
        return rows

    # ----------------------------------------------------------------- writing
    def promote(self, name: str, ref: int | str | ModelRef, alias: str) -> int:
        """Point ``alias`` at an existing version (one atomic write). ``ref`` is a version or ``@alias``."""
        check_name(name)
        check_alias(alias)
        if isinstance(ref, int):
            target = ModelRef(name, version=ref)
        elif isinstance(ref, str):
            target = ModelRef.parse(f"{name}{ref}" if ref.startswith("@") else f"{name}:{ref}")
        else:
            target = ref
        version = self.resolve(target)
        self._write_alias(name, alias, version)
        return version

    def _write_alias(self, name: str, alias: str, version: int) -> None:
        body = {"name": name, "alias": alias, "version": version, "updated_at": utc_now().isoformat()}
        self.objects.write_small(self._alias_path(name, alias), (json.dumps(body, indent=2) + "\n").encode())
        log.info("store %s: %s@%s -> %d", self.url, name, alias, version)

    def publish(self, request: PublishRequest) -> Manifest:
        """Publish an exported model folder as a new immutable version (defaults: see :class:`PublishRequest`).

        Anything wrong with the request is refused before the store is touched; an explicit ``version`` that
        exists is refused before anything is written. The manifest goes last (it makes the version exist), then
        ``latest`` and the request's aliases move.
        """
        checked = check_request(request)
        self._clean_stale(checked.name)
        target = self._claim_version(checked.name, request.version)
        version_dir = self._version_dir(checked.name, target)
        try:
            manifest = self._write_version(checked, target, version_dir)
        except BaseException:
            self._discard_incomplete(checked.name, target, version_dir)
            raise
        self.objects.remove_file(f"{version_dir}/{CLAIM_FILENAME}")
        self._move_aliases(checked.name, target, request.aliases)
        log.info("store %s: published %s:%d", self.url, checked.name, target)
        return manifest

    def _write_version(self, checked: CheckedRequest, version: int, version_dir: str) -> Manifest:
        """Stage the files locally, upload them, then commit the manifest."""
        with tempfile.TemporaryDirectory(prefix="trm-publish-") as tmp:
            manifest = stage_version(checked, version, self.url, Path(tmp))
            self._upload(Path(tmp), version_dir)
            self._commit_manifest(manifest, version_dir)
        return manifest

    def _upload(self, staging: Path, version_dir: str) -> None:
        for file_name in VERSION_FILES:
            self.objects.upload(staging / file_name, f"{version_dir}/{file_name}")

    def _discard_incomplete(self, name: str, version: int, version_dir: str) -> None:
        """Best effort after a failed publish (a SIGKILL skips this; the claim then ages out, see _clean_stale)."""
        try:
            if not self.objects.exists(f"{version_dir}/{MANIFEST_FILENAME}"):  # never touch a committed version
                self.objects.remove_tree(version_dir)
        except Exception:  # noqa: BLE001 - never hide the original error
            log.warning("store %s: could not clean incomplete %s:%d", self.url, name, version)

    def _move_aliases(self, name: str, version: int, aliases: Sequence[str]) -> None:
        """``latest`` (unless a faster concurrent publish already moved it further) and the requested aliases."""
        if self._current_latest(name) <= version:  # a slower concurrent publish must not move latest backwards
            self._write_alias(name, LATEST, version)
        for alias in aliases:
            if alias != LATEST:
                self._write_alias(name, alias, version)

    def _claim_version(self, name: str, explicit: int | None) -> int:
        """Reserve a version number by creating its claim object exclusively, so two concurrent publishers never
        write into the same folder. Automatic numbers go above every existing folder (complete or not): a number
        is never reused while anything of it remains."""
        folders, complete = self._scan(name)
        if explicit is not None:
            if explicit in complete:
                raise VersionExistsError(
                    f"model {name}:{explicit} already exists in {self.url}; versions are immutable"
                )
            if not self._try_claim(name, explicit):
                raise VersionExistsError(f"model {name}:{explicit} is being published by another writer in {self.url}")
            return explicit
        candidate = max(folders, default=0) + 1
        for _ in range(50):
            if self._try_claim(name, candidate):
                return candidate
            candidate += 1
        raise StoreError(f"could not reserve a version number for {name} in {self.url} (50 numbers taken)")

    def _try_claim(self, name: str, version: int) -> bool:
        body = {
            "version": version,
            "claimed_at": utc_now().isoformat(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
        }
        path = f"{self._version_dir(name, version)}/{CLAIM_FILENAME}"
        try:
            self.objects.write_small(path, json.dumps(body).encode(), exclusive=True)
        except FileExistsError:
            return False
        except (FileNotFoundError, PermissionError) as error:  # e.g. NoSuchBucket, read-only store
            raise StoreError(
                f"cannot write to store {self.url} ({type(error).__name__}: {error}); does the bucket/"
                f"folder exist and is it writable? (first write: {self.objects.where(path)})"
            ) from error
        return True

    def check_writable(self) -> None:
        """Write and delete a small probe object: proves, before a long run, that publishing at its end will be
        possible with these credentials (store reachable, bucket or folder present, writes allowed)."""
        path = self.location.join(f".preflight-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.json")
        body = json.dumps({"probe": True, "at": utc_now().isoformat()}).encode()
        try:
            self.objects.write_small(path, body)
            self.objects.remove_file(path)
        except (FileNotFoundError, PermissionError) as error:  # e.g. NoSuchBucket, AccessDenied, read-only folder
            raise StoreError(
                f"cannot write to store {self.url} ({type(error).__name__}: {error}); does the bucket/folder exist "
                "and do the credentials allow writes?"
            ) from error

    def _clean_stale(self, name: str) -> None:
        """Delete incomplete version folders (no manifest) that no live publisher owns: no claim, or a claim older
        than ``stale_after_s``. They are invisible anyway; this only reclaims space (and their numbers if they
        were the highest)."""
        now = utc_now()
        folders, complete = self._scan(name)
        for version in sorted(set(folders) - set(complete)):
            version_dir = self._version_dir(name, version)
            try:
                claim = json.loads(self.objects.read(f"{version_dir}/{CLAIM_FILENAME}"))
                age = (now - datetime.fromisoformat(claim["claimed_at"])).total_seconds()
            except NotFoundError:
                age = float("inf")
            except (ValueError, KeyError, TypeError):
                age = float("inf")
            if age >= self.stale_after_s:
                log.info("store %s: removing incomplete %s:%d (interrupted publish)", self.url, name, version)
                self.objects.remove_tree(version_dir)

    def _current_latest(self, name: str) -> int:
        try:
            return self._read_alias(name, LATEST)
        except (NotFoundError, StoreError):
            return 0

    def _commit_manifest(self, manifest: Manifest, version_dir: str) -> None:
        path = f"{version_dir}/{MANIFEST_FILENAME}"
        data = manifest.to_json().encode()
        try:
            self.objects.write_small(path, data, exclusive=True)
        except FileExistsError as error:
            if self.objects.read(path) == data:  # our own write, whose reply was lost and retried
                return
            raise VersionExistsError(
                f"model {manifest.name}:{manifest.version} was published concurrently by another writer in "
                f"{self.url}; versions are immutable, publish again to get the next number"
            ) from error

    # ----------------------------------------------------------------- downloading
    def download(self, ref: ModelRef | str, dest: Path) -> tuple[Manifest, Path]:
        """Copy a version into ``dest`` (created; must not exist or be empty), verifying each file's sha256 and
        size against the manifest. Nothing appears at ``dest`` unless every file verified."""
        ref = ModelRef.parse(ref) if isinstance(ref, str) else ref
        version = self.resolve(ref)
        manifest, raw = self.read_manifest(ref.name, version)
        dest = Path(dest)
        if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
            raise StoreError(f"{dest}: destination exists and is not an empty folder")
        with atomic_folder(dest) as staging:
            self.fetch_into(manifest, staging)
            (staging / MANIFEST_FILENAME).write_bytes(raw)
        return manifest, dest

    def fetch_into(self, manifest: Manifest, folder: Path) -> None:
        """Download every file the manifest lists into ``folder`` and verify them all (sha256 + size)."""
        version_dir = self._version_dir(manifest.name, manifest.version)
        for file_name in manifest.files:
            remote = f"{version_dir}/{file_name}"
            try:
                self.location.call(
                    f"download {self.objects.where(remote)}", self.location.fs.get_file, remote, str(folder / file_name)
                )
            except FileNotFoundError as error:
                where = self.objects.where(remote)
                raise NotFoundError(f"{where}: listed in the manifest but missing from the store") from error
        verify_folder(folder, manifest, where=f"{self.url.rstrip('/')}/models/{manifest.name}/{manifest.version}")
