"""What a retrain's result depends on, hashed: the fingerprint that lets a scheduled run skip an unchanged retrain.

On CPU, training is deterministic for fixed code, data, config, pinned packages and worker count, so a published
version with the same fingerprint is the model this run would publish again. The inputs: the code's git commit
(a checkout with uncommitted changes has no identity, so it never matches), the DVC hash of the data, the resolved
config without the paths that only name this run, the hash of the lock file that pins the packages, the worker
count, and the run's kind (search space, rehearsal, evaluation modes).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from trm.config import DATASET_SIZES, load_config
from trm.store import Manifest, ModelStore, NotFoundError
from trm.store.lineage import collect_git

FINGERPRINT_KEY = "fingerprint"  # in a manifest's extra: {"sha256": ..., "inputs": RunInputs}
LOCK_FILE = "requirements.lock"
# config fields that name where this run writes or reads, not what it computes
RUN_LOCAL_FIELDS = (("data", "root"), ("run", "output_dir"), ("run", "name"))
# model sizes read from the built data (0 in a preset, filled in a recorded config): the data's md5 already fixes
# them, and a reproduction (which sets every recorded leaf) must fingerprint like the run it reproduces
DATA_DERIVED_FIELDS = tuple(("model", key) for key in DATASET_SIZES)


class RunInputs(BaseModel):
    """Everything the published weights and metrics are a function of."""

    code_commit: str | None
    code_dirty: bool | None
    data_md5: str
    config: dict[str, Any]
    lock_sha256: str | None
    workers: int
    kind: dict[str, Any]

    @property
    def identifiable(self) -> bool:
        """Only committed code has an identity; a dirty or unknown checkout always retrains."""
        return bool(self.code_commit) and self.code_dirty is False

    def sha256(self) -> str:
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def portable_config(config: dict[str, Any]) -> dict[str, Any]:
    """The resolved config without the fields that only locate this run (its name, folders) or that the data
    determines (the model's sizes)."""
    kept = json.loads(json.dumps(config))
    for section, key in (*RUN_LOCAL_FIELDS, *DATA_DERIVED_FIELDS):
        kept.get(section, {}).pop(key, None)
    return kept


def file_sha256(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def run_inputs(
    repo_dir: Path,
    preset: str,
    training_overrides: list[str],
    data_md5: str,
    workers: int,
    kind: dict[str, Any],
) -> RunInputs:
    """Collect the inputs of a retrain about to train ``preset`` + ``training_overrides`` on data ``data_md5``."""
    git = collect_git(repo_dir)
    config = load_config(preset, training_overrides).model_dump(mode="json")
    return RunInputs(
        code_commit=git.commit,
        code_dirty=git.dirty,
        data_md5=data_md5,
        config=portable_config(config),
        lock_sha256=file_sha256(repo_dir / LOCK_FILE),
        workers=workers,
        kind=kind,
    )


def recorded_fingerprint(manifest: Manifest) -> str | None:
    entry = manifest.extra.get(FINGERPRINT_KEY)
    return entry.get("sha256") if isinstance(entry, dict) else None


def up_to_date_version(store: ModelStore, name: str, inputs: RunInputs) -> Manifest | None:
    """The latest version of ``name`` when it was made from exactly these inputs, else None."""
    if not inputs.identifiable:
        return None
    try:
        latest = store.manifest(name, store.resolve(f"{name}@latest"))
    except NotFoundError:
        return None
    return latest if recorded_fingerprint(latest) == inputs.sha256() else None
