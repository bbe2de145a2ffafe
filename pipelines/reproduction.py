"""What reproducing a published version means, as data: the run it records (preset, resolved config, data, workers,
code commit), the checks a reproduction must pass (same data bytes), and the comparison it publishes.

A reproduction trains the recorded *resolved* config, not the preset of today: the preset is only the base, every
leaf of the recorded config is set on top of it, so a preset edited since cannot change what is trained.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from pipelines.fingerprint import RUN_LOCAL_FIELDS, file_sha256, portable_config
from trm.errors import UsageError
from trm.store import Manifest

REPRODUCES_KEY = "reproduces"  # in a reproduction's manifest extra: the NAME:V it reproduces
COMPARISON_KEY = "reproduction"  # ... and how it compares (a Comparison)
WEIGHTS_FILE = "model.safetensors"


class DataMismatchError(RuntimeError):
    """The rebuilt (or pulled) data does not hash to what the original was trained on."""


class RecordedRun(BaseModel):
    """The retrain a manifest records, as the retrain flow's parameters."""

    reference: str  # NAME:V
    preset: str
    dataset: str
    overrides: list[str]
    workers: int
    commit: str | None
    commit_was_dirty: bool | None
    data_md5: str | None


class Comparison(BaseModel):
    """A reproduction against its original: file by file (sha256) and metric by metric."""

    original: str
    weights_identical: bool
    data_md5: str | None
    metric_deltas: dict[str, float]  # reproduction minus original, for every numeric test metric both have

    def largest_delta(self) -> float:
        return max((abs(v) for v in self.metric_deltas.values()), default=0.0)

    def verdict(self, tolerance: float) -> str:
        if self.weights_identical:
            return "bit-identical weights"
        within = self.largest_delta() <= tolerance
        return f"weights differ; largest metric delta {self.largest_delta():.4g} {'<=' if within else '>'} {tolerance}"


def _leaves(tree: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def config_overrides(config: dict[str, Any]) -> list[str]:
    """Every leaf of a resolved config as a ``key=value`` override (JSON values read back as YAML), except the
    fields that only locate a run."""
    local = {f"{section}.{key}" for section, key in RUN_LOCAL_FIELDS}
    return [f"{key}={json.dumps(value)}" for key, value in _leaves(config) if key not in local]


def recorded_run(manifest: Manifest) -> RecordedRun:
    """The run behind ``manifest``; refuses a version that was not published by the retrain flow."""
    reference = f"{manifest.name}:{manifest.version}"
    preset, workers = manifest.extra.get("preset"), manifest.extra.get("workers")
    if not preset or not isinstance(workers, int) or manifest.data is None or not manifest.config:
        raise UsageError(
            f"{reference}: its manifest does not record a retrain (preset, workers, data stage and config are "
            "needed); only versions published by the retrain flow can be reproduced"
        )
    md5 = next((out.md5 for out in manifest.data.outs if out.md5), None)
    return RecordedRun(
        reference=reference,
        preset=preset,
        dataset=manifest.data.stage,
        overrides=config_overrides(manifest.config),
        workers=workers,
        commit=manifest.git.commit,
        commit_was_dirty=manifest.git.dirty,
        data_md5=md5,
    )


def check_same_data(original: Manifest, md5: str) -> None:
    recorded = recorded_run(original).data_md5
    if recorded != md5:
        raise DataMismatchError(
            f"data differs from {original.name}:{original.version}'s: DVC md5 {md5} now, {recorded} recorded "
            "(the data code, raw files or params changed; check out the recorded commit, or pull the data from the "
            "DVC remote it was pushed to)"
        )


def check_same_config(original: Manifest, trained: dict[str, Any]) -> None:
    if portable_config(trained) != portable_config(original.config):
        raise UsageError(
            f"the reproduction of {original.name}:{original.version} resolved to another config than recorded "
            "(the config schema changed since); reproduce at the recorded commit (--at-commit)"
        )


def compare(original: Manifest, export_dir: Path, metrics: dict[str, Any]) -> Comparison:
    entry = original.files.get(WEIGHTS_FILE)
    identical = entry is not None and file_sha256(Path(export_dir) / WEIGHTS_FILE) == entry.sha256
    deltas = {
        key: float(metrics[key]) - float(value)
        for key, value in original.metrics.items()
        if isinstance(value, (int, float)) and isinstance(metrics.get(key), (int, float))
    }
    return Comparison(
        original=f"{original.name}:{original.version}",
        weights_identical=identical,
        data_md5=recorded_run(original).data_md5,
        metric_deltas=deltas,
    )
