"""Publish, list, resolve, promote and download model versions in a store (local folder or S3).

Layout under the store root::

    models/<name>/<version>/model.safetensors, config.json, metrics.json, README.md, training_curve.png,
                            manifest.json            <- written LAST: a version without it does not exist
                            .claim.json              <- only while a publish is in flight (or was killed)
    models/<name>/aliases/<alias>.json               <- {"name", "alias", "version", "updated_at"}, one object

Why this shape: S3 has no atomic folder rename, so a version is never staged and renamed; each file goes to its
final key and the manifest, written last, is the commit point. Before uploading, a publisher reserves its number
by creating ``<version>/.claim.json`` exclusively (local: ``os.link``; S3: conditional PUT ``If-None-Match: *``),
so concurrent publishers get distinct numbers and never overwrite each other's files; the claim is deleted after
the manifest. Automatic numbers go above every existing folder, so a number is never reused while anything of it
remains. A publish killed midway leaves files and a claim without a manifest: invisible to readers; the next
publish simply takes the next number, and removes incomplete folders whose claim is missing or older than
``stale_after_s`` (default 6 h). Aliases are single small objects replaced atomically (local: temp file +
``os.replace``; S3: one PUT), so a reader sees the old or the new target, never a mix; ``latest`` never moves
backwards.

Test hook: ``TRM_STORE_TEST_PAUSE_S`` (seconds, float) makes ``publish`` sleep after each uploaded file, so a test
can SIGKILL a real publishing process midway. It has no other effect and is unset in normal use.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from trm.paths import REPO_ROOT
from trm.store import card, lineage
from trm.store.errors import InvalidNameError, NotFoundError, StoreError, VersionExistsError
from trm.store.inputs import MODEL_FILES, check_model_folder, plain_json, read_optional_json
from trm.store.location import StoreLocation, open_store
from trm.store.manifest import (
    MANIFEST_FILENAME,
    FileEntry,
    Manifest,
    check_alias,
    check_name,
    sha256_file,
    utc_now,
    verify_folder,
)
from trm.store.objects import StoreObjects

log = logging.getLogger(__name__)

# upload order: weights first, manifest never here (it is the commit point, written by _commit_manifest)
VERSION_FILES = (*MODEL_FILES, "metrics.json", "training_curve.png", "README.md")
LATEST = "latest"
TEST_PAUSE_ENV = "TRM_STORE_TEST_PAUSE_S"
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
    """All model operations on one opened store. Every storage call goes through ``location.call`` so that an
    unreachable S3 endpoint is retried with backoff and then reported with the redacted URL."""

    def __init__(self, location: StoreLocation, stale_after_s: float = DEFAULT_STALE_AFTER_S) -> None:
        self.location = location
        self.objects = StoreObjects(location)
        self.stale_after_s = stale_after_s

    @classmethod
    def open(cls, url: str | os.PathLike[str] | None = None, options: Mapping[str, Any] | None = None,
             stale_after_s: float = DEFAULT_STALE_AFTER_S, **retry: Any) -> ModelStore:
        return cls(open_store(url, options, **retry), stale_after_s)

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
            parts = str(entry)[len(base):].split("/") if str(entry).startswith(base) else []
            if len(parts) == 2 and parts[0].isdigit() and not parts[0].startswith("0"):
                folders.add(int(parts[0]))
                if parts[1] == MANIFEST_FILENAME:
                    complete.add(int(parts[0]))
        return sorted(folders), sorted(complete)

    def _version_folders(self, name: str) -> list[int]:
        return self._scan(name)[0]

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
            raise StoreError(f"{self.objects.where(path)}: manifest says {manifest.name}:{manifest.version}, "
                             f"expected {name}:{version}")
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
            raise NotFoundError(f"model {ref.name}:{version}{via} does not exist in {self.url}; published versions: "
                                f"{self.versions(ref.name) or 'none'}")
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
                rows.append(VersionInfo(
                    model, version, manifest.created_at.isoformat(timespec="seconds"),
                    tuple(sorted(by_version.get(version, []))), manifest.git.commit, manifest.git.dirty,
                    manifest.metrics,
                ))
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

    def publish(
        self,
        name: str,
        model_dir: Path,
        *,
        metrics: Mapping[str, Any] | None = None,
        metrics_log: Path | None = None,
        config: Mapping[str, Any] | None = None,
        dataset_dir: Path | None = None,
        dataset_metadata: Mapping[str, Any] | None = None,
        dvc_stage: str | None = None,
        dvc_lock: Path | None = None,
        repo_dir: Path | None = None,
        ray_run_name: str | None = None,
        tune_run_name: str | None = None,
        tune_trial_name: str | None = None,
        timestamps: Mapping[str, str] | None = None,
        version: int | None = None,
        aliases: Iterable[str] = (),
        extra: Mapping[str, Any] | None = None,
    ) -> Manifest:
        """Publish an exported model folder (``model.safetensors`` + ``config.json``) as a new immutable version.

        Defaults: ``metrics`` from ``model_dir/metrics.json``, ``metrics_log`` from ``metrics.jsonl`` in
        ``model_dir`` or its parent (a training run folder is ``<run>/metrics.jsonl`` + ``<run>/export/``),
        ``config`` = the exported ``config.json``, ``repo_dir`` = this checkout (git facts; ``dvc.lock`` when
        ``dvc_stage`` is given). ``timestamps``: extra named times (e.g. ``training_started``) besides
        ``created_at``. ``version`` None = next number; an existing version is refused before anything
        is written. Moves ``latest`` (and any ``aliases``) after the manifest.
        """
        check_name(name)
        alias_list = [check_alias(a) for a in aliases]
        if version is not None and (not isinstance(version, int) or version < 1):
            raise InvalidNameError(f"invalid version {version!r}: versions are integers 1, 2, ...")
        model_dir = Path(model_dir)
        model_config = check_model_folder(model_dir)
        metrics_dict = plain_json(dict(metrics)) if metrics is not None else read_optional_json(
            model_dir / "metrics.json")
        if metrics_log is None:  # beside the weights, or in the run folder holding export/ (trm.train.loop layout)
            metrics_log = next((p for p in (model_dir / "metrics.jsonl", model_dir.parent / "metrics.jsonl")
                                if p.is_file()), None)
        repo = Path(repo_dir) if repo_dir is not None else REPO_ROOT
        data = None
        if dvc_stage:
            data = lineage.read_dvc_lock(Path(dvc_lock) if dvc_lock else repo / "dvc.lock", dvc_stage)
        if dataset_metadata is None and dataset_dir is not None:
            dataset_metadata = lineage.read_dataset_metadata(Path(dataset_dir))

        self._clean_stale(name)
        target = self._claim_version(name, version)
        version_dir = self._version_dir(name, target)
        committed = False
        try:
            draft = Manifest(
                name=name, version=target, created_at=utc_now(), files={},
                git=lineage.collect_git(repo), data=data,
                dataset_metadata=plain_json(dict(dataset_metadata)) if dataset_metadata is not None else None,
                config=plain_json(dict(config)) if config is not None else model_config,
                ray_run_name=ray_run_name, tune_run_name=tune_run_name, tune_trial_name=tune_trial_name,
                timestamps={k: str(v) for k, v in (timestamps or {}).items()},
                environment=lineage.collect_environment(), metrics=metrics_dict, extra=plain_json(dict(extra or {})),
            )
            with tempfile.TemporaryDirectory(prefix="trm-publish-") as tmp:
                staging = Path(tmp)
                for file_name in MODEL_FILES:
                    shutil.copyfile(model_dir / file_name, staging / file_name)
                (staging / "metrics.json").write_text(json.dumps(metrics_dict, indent=2, sort_keys=True) + "\n")
                card.render_training_curve(metrics_log, staging / "training_curve.png", title=f"{name}:{target}")
                (staging / "README.md").write_text(card.render_model_card(draft, self.url), encoding="utf-8")
                files = {f: FileEntry(sha256=sha256_file(staging / f), size=(staging / f).stat().st_size)
                         for f in VERSION_FILES}
                manifest = Manifest.model_validate(draft.model_copy(update={"files": files}).model_dump())
                pause = float(os.environ.get(TEST_PAUSE_ENV, "0") or 0)
                for file_name in VERSION_FILES:
                    self.objects.upload(staging / file_name, f"{version_dir}/{file_name}")
                    if pause:
                        time.sleep(pause)
                self._commit_manifest(manifest, version_dir)
                committed = True
        finally:
            if not committed:  # best effort (a SIGKILL skips this; the claim then ages out, see _clean_stale)
                try:
                    if not self.objects.exists(f"{version_dir}/{MANIFEST_FILENAME}"):  # never touch a committed version
                        self.objects.remove_tree(version_dir)
                except Exception:  # noqa: BLE001 - never hide the original error
                    log.warning("store %s: could not clean incomplete %s:%d", self.url, name, target)
        self.objects.remove_file(f"{version_dir}/{CLAIM_FILENAME}")
        if self._current_latest(name) <= target:  # a slower concurrent publish must not move latest backwards
            self._write_alias(name, LATEST, target)
        for alias in alias_list:
            if alias != LATEST:
                self._write_alias(name, alias, target)
        log.info("store %s: published %s:%d", self.url, name, target)
        return manifest

    def _claim_version(self, name: str, explicit: int | None) -> int:
        """Reserve a version number by creating its claim object exclusively, so two concurrent publishers never
        write into the same folder. Automatic numbers go above every existing folder (complete or not): a number
        is never reused while anything of it remains."""
        folders, complete = self._scan(name)
        if explicit is not None:
            if explicit in complete:
                raise VersionExistsError(
                    f"model {name}:{explicit} already exists in {self.url}; versions are immutable")
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
        body = {"version": version, "claimed_at": utc_now().isoformat(), "host": socket.gethostname(),
                "pid": os.getpid()}
        path = f"{self._version_dir(name, version)}/{CLAIM_FILENAME}"
        try:
            self.objects.write_small(path, json.dumps(body).encode(), exclusive=True)
        except FileExistsError:
            return False
        except (FileNotFoundError, PermissionError) as error:  # e.g. NoSuchBucket, read-only store
            raise StoreError(f"cannot write to store {self.url} ({type(error).__name__}: {error}); does the bucket/"
                             f"folder exist and is it writable? (first write: {self.objects.where(path)})") from error
        return True

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
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = dest.parent / f".{dest.name}.tmp-{uuid.uuid4().hex}"
        staging.mkdir()
        try:
            self.fetch_into(manifest, staging)
            (staging / MANIFEST_FILENAME).write_bytes(raw)
            if dest.exists():
                dest.rmdir()
            os.replace(staging, dest)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return manifest, dest

    def fetch_into(self, manifest: Manifest, folder: Path) -> None:
        """Download every file the manifest lists into ``folder`` and verify them all (sha256 + size)."""
        version_dir = self._version_dir(manifest.name, manifest.version)
        for file_name in manifest.files:
            remote = f"{version_dir}/{file_name}"
            try:
                self.location.call(f"download {self.objects.where(remote)}", self.location.fs.get_file, remote,
                                   str(folder / file_name))
            except FileNotFoundError as error:
                where = self.objects.where(remote)
                raise NotFoundError(f"{where}: listed in the manifest but missing from the store") from error
        verify_folder(folder, manifest, where=f"{self.url.rstrip('/')}/models/{manifest.name}/{manifest.version}")
